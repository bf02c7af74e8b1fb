"""Running operations against targets (in a worker) and reconciling desired
with observed state (on a beat schedule).

A task claims its Operation with a conditional UPDATE, so a message delivered
twice runs once. Each step is recorded with a heartbeat; the reconciler
re-drives an operation whose heartbeat stopped (its worker died) and gives up
after OPERATION_MAX_ATTEMPTS, marking it needs-attention instead of looping.
"Healthy" is only ever set from an observation of the target.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from deployments import crypto, queue
from deployments.audit import audit
from deployments.health.verdict import observation_json, status_from
from deployments.models import Deployment, HealthSample, Operation, Registration
from deployments.services import notifications
from deployments.services.approvals import requests_expire
from deployments.services.operation_start import start_operation
from workers.targets import registry
from workers.targets.base import Capability, DeploymentRef, DeploySpec, Observation, TargetError

log = logging.getLogger(__name__)
MAX_STEPS = 200
# Longest wait before retrying a transient target error; like every countdown
# it must stay below the broker's visibility timeout (a test checks).
MAX_RETRY_DELAY = 300


@dataclass(frozen=True)
class Outcome:
    """What happened: whether this delivery ran it, and in how many seconds a
    transient failure's retry was scheduled (None: no retry)."""

    ran: bool
    retry_in: int | None = None


def _step(operation_id: int, message: str | None) -> None:
    # Its own short write, outside any long transaction: the page shows it at
    # once and the heartbeat proves the worker is alive.
    now = timezone.now()
    if message is None:
        Operation.objects.filter(pk=operation_id).update(heartbeat_at=now)
        return
    operation = Operation.objects.only("steps").get(pk=operation_id)
    steps = [*operation.steps, {"at": now.isoformat(), "message": message[:1000]}][-MAX_STEPS:]
    Operation.objects.filter(pk=operation_id).update(steps=steps, heartbeat_at=now)


def _registry_names(deployment: Deployment, adapter) -> dict:
    """The line (its name names the model) and the registration recorded
    for this content in the target's model registry (kinds with one)."""
    registry_at = adapter.model_registry()
    if registry_at is None:
        return {}
    workspace, asset_type = registry_at
    known = Registration.objects.filter(
        workspace=workspace, asset_type=asset_type, repository_digest=deployment.repository_digest
    ).first()
    return {"line": deployment.repository.line.name, "known_model": known.label if known else ""}


def _record_registration(deployment: Deployment, registered) -> None:
    """Inside the caller's transaction: which model version holds this content."""
    if registered is None:
        return
    Registration.objects.update_or_create(
        workspace=registered.workspace,
        asset_type=registered.asset_type,
        repository_digest=deployment.repository_digest,
        defaults={
            "model_name": registered.name,
            "model_version": registered.version,
            "repository": deployment.repository,
            "target": deployment.target,
        },
    )


def _spec(deployment: Deployment, operation: Operation, adapter) -> DeploySpec:
    return DeploySpec(
        deployment_id=deployment.pk,
        name=deployment.name,
        repository_path=deployment.repository.path,
        repository_digest=deployment.repository_digest,
        spec_digest=deployment.spec_digest,
        mode=deployment.mode,
        entry_script=deployment.entry_script,
        pip_packages=deployment.pip_packages,
        worker_count=deployment.worker_count,
        resources=deployment.resources,
        auth_enabled=deployment.auth_enabled,
        idempotency_key=str(operation.idempotency_key),
        **_registry_names(deployment, adapter),
    )


def apply_observation(deployment: Deployment, observation: Observation) -> bool:
    """Record what was seen; audit only a change of status. True if it changed."""
    status, reason = status_from(observation)
    if observation.spec_digest and observation.spec_digest != deployment.spec_digest:
        # Not corrected on its own: the desired spec may still need an approval.
        status = Deployment.Status.DEGRADED if status == Deployment.Status.HEALTHY else status
        drift = f"drift: the target runs spec {observation.spec_digest[:12]}, desired {deployment.spec_digest[:12]}"
        reason = f"{drift}; {reason}" if reason else f"{drift} (redeploy to apply)"
    with transaction.atomic():
        locked = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("target__environment")
            .get(pk=deployment.pk)
        )
        if locked.status not in Deployment.RUNNING | {Deployment.Status.DEPLOYING}:
            return False  # an operation took over meanwhile; its outcome decides
        changed = locked.status != status
        before = {"status": locked.status, "reason": locked.status_reason}
        locked.status, locked.status_reason = status, reason
        locked.observed = observation_json(observation)
        fields = ["status", "status_reason", "observed", "updated_at"]
        if observation.scoring_uri and observation.scoring_uri != locked.scoring_uri:
            fields += _move_address(locked, observation.scoring_uri)
        for field, key in (("key_encrypted", observation.key), ("secondary_key_encrypted", observation.secondary_key)):
            if key and (not getattr(locked, field) or crypto.decrypt(getattr(locked, field)) != key):
                setattr(locked, field, crypto.encrypt(key))
                fields.append(field)
        locked.save(update_fields=fields)
        if changed:
            # Every transition starts a segment of the availability timeline (the
            # first verdict is one too: a deployment starts out deploying).
            HealthSample.objects.create(
                deployment=locked,
                at=timezone.now(),
                status=status,
                reason=reason,
                live=observation.live,
                ready=observation.ready,
                model_states=locked.observed.get("models", []),
            )
            audit(
                action="deployment.status_changed",
                obj=locked,
                before=before,
                after={"status": status, "reason": reason},
            )
    return changed


def _move_address(locked: Deployment, uri: str) -> list[str]:
    """Point the deployment at `uri` (the caller saves the fields returned).
    A known address that changes is kept for its page to say clients must
    move (the local target's endpoints replaced per-server addresses), and audited."""
    fields = ["scoring_uri", "updated_at"]
    if locked.scoring_uri and uri:
        audit(
            action="deployment.address_changed",
            obj=locked,
            before={"scoring_uri": locked.scoring_uri},
            after={"scoring_uri": uri},
        )
        locked.scoring_uri_before = locked.scoring_uri
        fields.append("scoring_uri_before")
    locked.scoring_uri = uri
    return fields


def _claim(operation_id: int, task_id: str) -> bool:
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, status=Operation.Status.QUEUED).update(
        status=Operation.Status.RUNNING,
        attempts=F("attempts") + 1,
        celery_task_id=task_id[:64],
        started_at=now,
        heartbeat_at=now,
    )
    return claimed == 1


def _finish(operation: Operation, *, status: str, error: str = "") -> None:
    Operation.objects.filter(pk=operation.pk).update(status=status, error=error, finished_at=timezone.now())


def _fail(operation: Operation, deployment: Deployment, message: str, *, needs_attention: bool = False) -> None:
    with transaction.atomic():
        _finish(
            operation,
            status=Operation.Status.NEEDS_ATTENTION if needs_attention else Operation.Status.FAILED,
            error=message,
        )
        Deployment.objects.filter(pk=deployment.pk).update(
            status=Deployment.Status.FAILED, status_reason=message, updated_at=timezone.now()
        )
        audit(
            action="deployment.failed",
            obj=deployment,
            details={"operation": operation.pk, "kind": operation.kind, "error": message},
        )
        notifications.deployment_failed(deployment, message)


def operation_execute(*, operation_id: int, task_id: str) -> Outcome:
    if not _claim(operation_id, task_id):
        return Outcome(ran=False)  # another delivery has it, or it is finished
    operation = Operation.objects.select_related("deployment__target__environment", "deployment__repository").get(
        pk=operation_id
    )
    deployment = operation.deployment
    progress = lambda message: _step(operation.pk, message)  # noqa: E731 - a callback, named for reading
    in_progress = Deployment.Status.DELETING if operation.kind == Operation.Kind.DELETE else Deployment.Status.DEPLOYING
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(status=in_progress, updated_at=timezone.now())
        audit(
            action="deployment.started",
            obj=deployment,
            details={"operation": operation.pk, "kind": operation.kind, "attempt": operation.attempts},
        )
    progress(f"Attempt {operation.attempts}: {operation.get_kind_display().lower()} on {deployment.target.name}")
    try:
        adapter = registry.adapter_for(deployment.target)
        if operation.kind == Operation.Kind.DEPLOY:
            if deployment.repository is None:
                raise TargetError("the repository was deleted", permanent=True)
            result = adapter.deploy(_spec(deployment, operation, adapter), progress)
            observation = adapter.status(DeploymentRef.of(deployment))
        elif operation.kind == Operation.Kind.TRAFFIC:
            adapter.set_traffic(DeploymentRef.of(deployment), operation.params["traffic"], progress)
            observation = adapter.status(DeploymentRef.of(deployment))
        elif operation.kind == Operation.Kind.KEY:
            adapter.regenerate_key(DeploymentRef.of(deployment), operation.params["key"], progress)
            observation = adapter.status(DeploymentRef.of(deployment))
        else:
            adapter.delete(DeploymentRef.of(deployment), progress)
    except TargetError as exc:
        if not exc.permanent and operation.attempts < settings.OPERATION_MAX_ATTEMPTS:
            delay = min(10 * 2 ** (operation.attempts - 1), MAX_RETRY_DELAY)
            progress(f"Transient error, retrying in {delay} s: {exc.message}")
            # Dated when its delayed message is due, so the reconciler only
            # re-sends it if that message is lost, and backoff is kept.
            Operation.objects.filter(pk=operation.pk).update(
                status=Operation.Status.QUEUED,
                error=exc.message,
                enqueued_at=timezone.now() + timedelta(seconds=delay),
            )
            queue.run_operation_later(operation_id=operation.pk, target=deployment.target, countdown=delay)
            return Outcome(ran=True, retry_in=delay)
        progress(f"Failed: {exc.message}")
        _fail(operation, deployment, exc.message)
        return Outcome(ran=True)
    except Exception as exc:
        # A bug, not the target's answer: fail loudly rather than leave it running.
        log.exception("operation %s crashed", operation.pk)
        progress(f"Internal error: {type(exc).__name__}: {exc}")
        _fail(operation, deployment, f"internal error: {type(exc).__name__}: {exc}")
        return Outcome(ran=True)

    with transaction.atomic():
        _finish(operation, status=Operation.Status.SUCCEEDED)
        if operation.kind == Operation.Kind.DEPLOY:
            locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
            if result.scoring_uri != locked.scoring_uri:
                locked.save(update_fields=_move_address(locked, result.scoring_uri))
            _record_registration(locked, result.registered)
            details = {"operation": operation.pk, "scoring_uri": result.scoring_uri, "notes": result.notes}
            if result.registered is not None:
                details["model"] = {
                    "workspace": result.registered.workspace,
                    "name": result.registered.name,
                    "version": result.registered.version,
                }
            audit(action="deployment.succeeded", obj=deployment, details=details)
        elif operation.kind == Operation.Kind.TRAFFIC:
            audit(
                action="deployment.traffic_changed",
                obj=deployment,
                before={"traffic": (deployment.observed or {}).get("traffic", {})},
                after={"traffic": observation.traffic},
                details={"operation": operation.pk},
            )
        elif operation.kind == Operation.Kind.KEY:
            audit(
                action="deployment.key_regenerated",
                obj=deployment,
                details={"operation": operation.pk, "key": operation.params["key"]},
            )
        else:
            Deployment.objects.filter(pk=deployment.pk).update(
                status=Deployment.Status.DELETED, status_reason="", observed={}, updated_at=timezone.now()
            )
            audit(action="deployment.deleted", obj=deployment, details={"operation": operation.pk})
    if operation.kind in (Operation.Kind.DEPLOY, Operation.Kind.TRAFFIC, Operation.Kind.KEY):
        apply_observation(deployment, observation)
    progress("Done")
    return Outcome(ran=True)


# --- the reconciler -------------------------------------------------------------


def _reap_stale(now) -> int:
    stale = Operation.objects.filter(
        status=Operation.Status.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=settings.OPERATION_STALE_AFTER),
    ).select_related("deployment__target__environment")  # the audit event names the environment
    count = 0
    for operation in stale:
        with transaction.atomic():
            locked = (
                Operation.objects.select_for_update(skip_locked=True)
                .filter(pk=operation.pk, status=Operation.Status.RUNNING)
                .first()
            )
            if locked is None:
                continue
            count += 1
            if locked.attempts >= settings.OPERATION_MAX_ATTEMPTS:
                message = f"its worker was lost {locked.attempts} times; not retried again"
                _step(locked.pk, f"Needs attention: {message}")
                _fail(locked, operation.deployment, message, needs_attention=True)
                continue
            _step(locked.pk, "Worker lost (no heartbeat); re-driving")
            Operation.objects.filter(pk=locked.pk).update(status=Operation.Status.QUEUED, enqueued_at=now)
            queue.run_operation(operation)  # the outer row: its target is loaded already
    return count


def _resend_queued(now) -> int:
    # A broker restart can lose a message; the claim makes a second one harmless.
    waiting = Operation.objects.filter(
        status=Operation.Status.QUEUED,
        enqueued_at__lt=now - timedelta(seconds=settings.OPERATION_RESEND_AFTER),
    ).select_related("deployment__target")  # the queue depends on the target

    count = 0
    for operation in waiting:
        with transaction.atomic():
            if Operation.objects.filter(pk=operation.pk, status=Operation.Status.QUEUED).update(enqueued_at=now):
                queue.run_operation(operation)
                count += 1
    return count


def observe(*, host: str | None = None) -> dict[str, int]:
    """Observe every watched deployment this process may observe: all but
    those of host-bound kinds on other hosts, whose processes only their own
    host can see. Those are handed to their host's queue (observe_host).
    With `host`, only that host's host-bound deployments."""
    figures = {"observed": 0, "changed": 0, "restarted": 0}
    # DEPLOYING without an operation: submitted to a target that provisions
    # asynchronously (Azure); observation says when it settles.
    watched = Deployment.RUNNING | {Deployment.Status.DEPLOYING}
    deployments = (
        Deployment.objects.filter(desired_state=Deployment.Desired.PRESENT, status__in=watched)
        .exclude(operations__status__in=Operation.ACTIVE)
        .select_related("target__environment", "repository")
        .prefetch_related("repository__models")
    )
    elsewhere = set()
    for deployment in deployments:
        kind = deployment.target.descriptor
        where = registry.target_host(deployment.target) if kind.host_bound else None
        if host is not None and where != host:
            continue
        if host is None and where not in (None, settings.WORKER_HOST):
            elsewhere.add(where)
            continue
        try:
            observation = registry.adapter_for(deployment.target).status(DeploymentRef.of(deployment))
        except TargetError as exc:
            observation = Observation(exists=True, detail=exc.message)
        figures["observed"] += 1
        if not observation.exists and kind.has(Capability.RESTART):
            figures["restarted"] += _restart(deployment, observation)
            continue
        figures["changed"] += apply_observation(deployment, observation)
    for other in sorted(elsewhere):
        queue.observe_host(other)
    return figures


def _restart(deployment: Deployment, observation: Observation) -> int:
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().select_related("target__environment").get(pk=deployment.pk)
        if locked.operations.filter(status__in=Operation.ACTIVE).exists():
            return 0
        locked.restarts += 1
        locked.status = Deployment.Status.UNHEALTHY
        locked.status_reason = f"{observation.detail}; restarting (restart {locked.restarts})"
        locked.observed = observation_json(observation)
        locked.save(update_fields=["restarts", "status", "status_reason", "observed", "updated_at"])
        audit(
            action="deployment.restarted", obj=locked, details={"restarts": locked.restarts, "why": observation.detail}
        )
        # A restart re-applies what was approved; it needs no new approval.
        start_operation(
            deployment=locked,
            kind=Operation.Kind.DEPLOY,
            actor=None,
            reason=f"restart {locked.restarts}: {observation.detail}",
        )
    return 1


def reconcile() -> dict[str, int]:
    now = timezone.now()
    figures = {"reaped": _reap_stale(now), "resent": _resend_queued(now), "expired": requests_expire(now)}
    figures.update(observe())
    return figures
