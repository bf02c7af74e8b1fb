"""Moving a deployment to another target of its environment: an SDK v1
webservice (whose SDK's support ended) to an SDK v2 online endpoint.

The equivalent deployment is created through the usual deploy (approved
where the environment asks), compared with the original on golden requests
and latency, side by side, then the original is deleted through the usual
delete (approved where the environment asks). Clients move from the old
scoring address to the new one in between: Azure gives the two different
addresses, so the dashboard cannot move them itself; the migration page
says so."""

import statistics
import time

from django.db import transaction
from django.utils import timezone

from deployments import crypto, queue
from deployments.audit import audit
from deployments.console.infer import base_url
from deployments.errors import DomainError, WrongState
from deployments.integrity import atomic
from deployments.models import Deployment, DeployRequest, Migration, ModelRepository, Target
from deployments.rollouts import golden as golden_requests
from deployments.rollouts import plan as rollout_plan
from deployments.services.deployments import deployment_create, deployment_delete
from deployments.services.permissions import require
from workers.targets.base import Capability

Status = Migration.Status
# Requests each side answers for the latency comparison.
LATENCY_SAMPLES = 20


def why_not(source: Deployment, target: Target) -> str:
    """Why `source` cannot move to `target` ("" when it can): said by the
    wizard before anything is created."""
    if target.pk == source.target_id:
        return "It is already on that target."
    if target.environment_id != source.target.environment_id:
        return f"{target.name} is in {target.environment.name}; a migration stays in {source.target.environment.name}."
    if not target.descriptor.has(Capability.TRAFFIC):
        return f"{target.name} ({target.kind_label}) is no online endpoint with a traffic split."
    if source.mode == Deployment.Mode.ENTRY_SCRIPT and not target.descriptor.has(Capability.ENTRY_SCRIPT):
        return (
            f"{source.name} runs an entry script (score.py in front of Triton), and {target.kind_label} targets here "
            "do not host entry scripts: it cannot move as it is. Serve the models in Triton mode (clients call /v2), "
            "deploy that, then move it."
        )
    if source.status not in Deployment.RUNNING:
        return f"{source.name} is {source.get_status_display().lower()}: only a running service is compared and moved."
    return ""


@atomic
def migration_create(
    *,
    source: Deployment,
    target: Target,
    actor,
    name: str = "",
    repository: ModelRepository | None = None,
    golden_requests=None,
) -> Migration:
    """The new deployment is requested on `target` (an approval request
    where its environment asks); `repository` names what an adopted service
    (no recorded repository) serves."""
    environment = source.target.environment
    require(actor, "deployments.add_deployment", "Moving a deployment", environment=environment)
    locked = Deployment.objects.select_for_update().select_related("target__environment").get(pk=source.pk)
    reason = why_not(locked, target)
    if reason:
        raise DomainError(reason, code="cannot_migrate", path="target")
    if locked.migrations_out.filter(status__in=Migration.ACTIVE).exists():
        raise WrongState(f"{locked.name} is already being moved.", code="migration_active")
    repository = repository or locked.repository
    if repository is None:
        raise DomainError(
            f"{locked.name} was adopted: no repository is recorded for it here. Name the revision that holds its "
            "models (upload it first); the comparison then shows whether both answer alike.",
            path="repository",
        )
    saved = [g.request for g in locked.golden_requests.all()]
    golden = rollout_plan.clean_golden([*saved, *(golden_requests or [])], models=rollout_plan.models_of(repository))
    destination = deployment_create(
        name=name or locked.name,
        repository=repository,
        target=target,
        actor=actor,
        mode=locked.mode,
        worker_count=locked.worker_count,
        resources=locked.resources,
        auth_enabled=locked.auth_enabled,
        promoted_from={"deployment": locked.pk, "name": locked.name, "migration": True},
    )
    migration = Migration.objects.create(
        source=locked, destination=destination, golden_requests=golden, created_by=actor
    )
    audit(
        action="deployment.migration_started",
        actor=actor,
        obj=locked,
        details={
            "migration": migration.pk,
            "destination": {"id": destination.pk, "name": destination.name, "target": target.name},
            "golden_requests": len(golden),
        },
    )
    return migration


def _lock(migration: Migration, actor, doing: str) -> Migration:
    require(actor, "deployments.add_deployment", doing, environment=migration.source.target.environment)
    return Migration.objects.select_for_update().select_related("source", "destination").get(pk=migration.pk)


@atomic
def migration_compare(*, migration: Migration, actor) -> Migration:
    locked = _lock(migration, actor, "Comparing")
    if locked.status not in (Status.DEPLOYED, Status.COMPARED):
        raise WrongState(f"The migration is {locked.get_status_display().lower()}: nothing to compare now.")
    if not locked.golden_requests:
        raise WrongState(
            "No golden request to compare with: save one from the original's test-inference console first.",
            code="no_golden_requests",
        )
    locked.status = Status.COMPARING
    locked.save(update_fields=["status", "updated_at"])
    audit(
        action="deployment.migration_compare_requested",
        actor=actor,
        obj=locked.source,
        details={"migration": locked.pk},
    )
    queue.compare_migration(locked.pk)
    return locked


def _key(deployment: Deployment) -> str:
    return crypto.decrypt(deployment.key_encrypted) if deployment.key_encrypted else ""


def _latency(deployment: Deployment, request: dict) -> dict:
    # One client for all the samples: a new connection each (a TLS handshake
    # on one side, none on a plain-HTTP v1 service) would time the handshakes.
    results = golden_requests.run(
        base_url=base_url(deployment), key=_key(deployment), requests=[request] * LATENCY_SAMPLES
    )
    times = sorted(result["ms"] for result in results if result["ms"] is not None)
    if not times:
        return {"samples": 0, "p50_ms": None, "p95_ms": None}
    return {
        "samples": len(times),
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
    }


def migration_compare_run(migration_id: int) -> None:
    """In a worker: both sides answer the golden requests, then each is
    timed on the first; the outcome is recorded with its audit event."""
    migration = Migration.objects.select_related("source", "destination").get(pk=migration_id)
    if migration.status != Status.COMPARING:
        return
    sides = {"source": migration.source, "destination": migration.destination}
    answers = {
        side: golden_requests.run(base_url=base_url(d), key=_key(d), requests=migration.golden_requests)
        for side, d in sides.items()
    }
    golden = []
    for index, request in enumerate(migration.golden_requests):
        source, destination = answers["source"][index], answers["destination"][index]
        same = source["outputs"] == destination["outputs"] and bool(source["outputs"])
        golden.append(
            {
                "name": request["name"],
                "source": {k: source[k] for k in ("passed", "detail", "ms")},
                "destination": {k: destination[k] for k in ("passed", "detail", "ms")},
                "same": same,
            }
        )
    started = time.monotonic()
    latency = {side: _latency(d, migration.golden_requests[0]) for side, d in sides.items()}
    passed = all(g["source"]["passed"] and g["destination"]["passed"] and g["same"] for g in golden)
    comparison = {
        "at": timezone.now().isoformat(),
        "passed": passed,
        "golden": golden,
        "latency": latency,
        "seconds": round(time.monotonic() - started, 3),
    }
    with transaction.atomic():
        locked = Migration.objects.select_for_update().get(pk=migration_id)
        if locked.status != Status.COMPARING:
            return
        locked.status, locked.comparison = Status.COMPARED, comparison
        locked.save(update_fields=["status", "comparison", "updated_at"])
        audit(
            action="deployment.migration_compared",
            obj=migration.source,
            details={"migration": locked.pk, "passed": passed, "latency": latency, "golden": golden},
        )


@atomic
def migration_cut_over(*, migration: Migration, actor, force: bool = False, because: str = "") -> Migration:
    """Delete the original (through approval where the environment asks
    for deletes): clients must call the new address by then."""
    locked = _lock(migration, actor, "Cutting over")
    if locked.status != Status.COMPARED:
        raise WrongState(
            f"The migration is {locked.get_status_display().lower()}: compare both sides before the cut-over."
        )
    if not locked.comparison.get("passed") and not force:
        raise WrongState(
            "The two did not answer alike: look at the comparison, or send force with a reason.",
            code="not_equivalent",
            path="force",
        )
    if force and not locked.comparison.get("passed") and not because.strip():
        raise DomainError("Say why the original goes although the comparison failed.", path="because")
    destination = Deployment.objects.get(pk=locked.destination_id)
    if destination.status != Deployment.Status.HEALTHY:
        raise WrongState(
            f"{destination.name} is {destination.get_status_display().lower()}: cut over to a healthy one."
        )
    deployment_delete(deployment=locked.source, actor=actor)
    locked.status = Status.CUTTING_OVER
    locked.forced_because = because.strip() if force else ""
    locked.save(update_fields=["status", "forced_because", "updated_at"])
    audit(
        action="deployment.migration_cut_over_requested",
        actor=actor,
        obj=locked.source,
        details={"migration": locked.pk, "forced": bool(force), "because": locked.forced_because},
    )
    return locked


@atomic
def migration_abandon(*, migration: Migration, actor) -> Migration:
    """Stop following it; the new deployment stays (delete it like any other)."""
    locked = _lock(migration, actor, "Abandoning a migration")
    if locked.status not in Migration.ACTIVE or locked.status == Status.CUTTING_OVER:
        raise WrongState(f"The migration is {locked.get_status_display().lower()}: it cannot be abandoned now.")
    _finish(locked, Status.ABANDONED, f"abandoned by {actor.get_username()}", actor=actor)
    return locked


def _finish(migration: Migration, status: str, reason: str, *, actor=None) -> None:
    migration.status, migration.reason, migration.finished_at = status, reason, timezone.now()
    migration.save(update_fields=["status", "reason", "finished_at", "updated_at"])
    audit(
        action=f"deployment.migration_{status}",
        actor=actor,
        obj=migration.source,
        details={"migration": migration.pk, "why": reason},
    )


def migrations_settle() -> int:
    """On the reconciler's beat: follow what the deploy and the delete did."""
    moved = 0
    for migration_id in Migration.objects.filter(status__in=[Status.DEPLOYING, Status.CUTTING_OVER]).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            migration = (
                Migration.objects.select_for_update().select_related("source", "destination").get(pk=migration_id)
            )
            moved += _settle(migration)
    return moved


def _settle(migration: Migration) -> bool:
    source, destination = migration.source, migration.destination
    if migration.status == Status.DEPLOYING:
        if destination.status == Deployment.Status.HEALTHY:
            migration.status = Status.DEPLOYED
            migration.save(update_fields=["status", "updated_at"])
            audit(action="deployment.migration_deployed", obj=source, details={"migration": migration.pk})
            return True
        if destination.status in (Deployment.Status.FAILED, Deployment.Status.REJECTED, Deployment.Status.DELETED):
            why = f"{destination.name} is {destination.get_status_display().lower()}: {destination.status_reason}"
            _finish(migration, Status.FAILED, why)
            return True
        return False
    if source.status == Deployment.Status.DELETED:
        _finish(
            migration, Status.DONE, f"{source.name} is deleted; {destination.name} serves at {destination.scoring_uri}"
        )
        return True
    waiting = source.requests.filter(kind=DeployRequest.Kind.DELETE, status=DeployRequest.Status.PENDING).exists()
    if not waiting and source.status != Deployment.Status.DELETING:
        # The delete was rejected or lapsed: the original still serves.
        migration.status, migration.reason = Status.COMPARED, "the original's delete was not approved"
        migration.save(update_fields=["status", "reason", "updated_at"])
        audit(action="deployment.migration_cut_over_refused", obj=source, details={"migration": migration.pk})
        return True
    return False
