"""Running operations against targets (in a worker) and reconciling desired
with observed state (on a beat schedule).

A task claims its Operation with a conditional UPDATE, so a message delivered
twice runs once; the claim's attempt number fences every later write
(services/attempts.py). A thread beats the heartbeat while the attempt runs;
the reconciler re-drives an operation whose heartbeat stopped (its worker
died) and gives up after OPERATION_MAX_ATTEMPTS. Transient target errors are
retried with backoff (honouring Retry-After) up to the same number of
attempts. "Needs attention" is an operation status: the engine stopped trying
and a person must look; its deployment is then failed, with a reason that
starts "needs attention:".
"Healthy" is only ever set from an observation of the target, through the
one writer in health/record.py.
"""

import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from deployments import queue
from deployments.audit import audit
from deployments.health.record import Seen, move_address, observation_record
from deployments.health.verdict import control_failed, control_json, data_json, observed_view
from deployments.loadlab.search import scratch_cleanup
from deployments.models import Deployment, Operation, Registration
from deployments.rollouts import driver as rollout_driver
from deployments.services import notifications
from deployments.services.approvals import requests_expire
from deployments.services.attempts import MAX_STEPS, Attempt, Superseded
from deployments.services.config_searches import config_searches_settle
from deployments.services.load_tests import load_tests_settle
from deployments.services.migrations import migrations_settle
from deployments.services.operation_start import start_operation
from deployments.services.rollout_operations import rollout_candidate_spec, rollout_repository
from workers.targets import registry
from workers.targets.base import (
    Capability,
    DeploymentRef,
    DeploySpec,
    Observation,
    StillInProgress,
    TargetError,
)
from workers.targets.descriptor import Probe

log = logging.getLogger(__name__)
# Longest wait before retrying a transient target error; like every countdown
# it must stay below the broker's visibility timeout (a test checks).
MAX_RETRY_DELAY = 300
# The step that says an operation only waits for the target (see _after_wait).
_WAITING = "looking again in"


@dataclass(frozen=True)
class Outcome:
    """What happened: whether this delivery ran it, and in how many seconds a
    transient failure's retry was scheduled (None: no retry)."""

    ran: bool
    retry_in: int | None = None


def registry_names(repository, adapter) -> dict:
    """The line (its name names the model) and the registration recorded
    for this content in the target's model registry (kinds with one)."""
    registry_at = adapter.model_registry()
    if registry_at is None:
        return {}
    workspace, asset_type = registry_at
    known = Registration.objects.filter(
        workspace=workspace, asset_type=asset_type, repository_digest=repository.digest
    ).first()
    return {"line": repository.line.name, "known_model": known.label if known else ""}


def _record_registration(deployment: Deployment, registered, repository=None) -> None:
    """Inside the caller's transaction: which model version holds this
    content (`repository`: a rollout candidate's, else the deployment's)."""
    if registered is None:
        return
    repository = repository or deployment.repository
    Registration.objects.update_or_create(
        workspace=registered.workspace,
        asset_type=registered.asset_type,
        repository_digest=repository.digest,
        defaults={
            "model_name": registered.name,
            "model_version": registered.version,
            "repository": repository,
            "target": deployment.target,
        },
    )


def _spec(deployment: Deployment, operation: Operation, adapter) -> DeploySpec:
    if operation.params.get("rollout"):
        return rollout_candidate_spec(deployment, operation, adapter)
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
        **registry_names(deployment.repository, adapter),
    )


def apply_observation(deployment: Deployment, observation: Observation, *, data: bool = True) -> bool:
    """Hand what the adapter said to the one writer (health/record.py).
    With data=False only its control-plane part: the health poller probes
    this deployment's data plane itself. True if the status changed."""
    # A probe of something still provisioning (or gone) says nothing of its data plane.
    data = data and observation.exists and observation.provisioning in ("", "succeeded")
    return observation_record(
        deployment_id=deployment.pk,
        seen=Seen(
            control=control_json(observation),
            data=data_json(observation) if data else None,
            scoring_uri=observation.scoring_uri,
            key=observation.key,
            secondary_key=observation.secondary_key,
        ),
    )


def _claim(operation_id: int, task_id: str) -> int | None:
    """The attempt's number (its fencing token), or None if another delivery has it."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, status=Operation.Status.QUEUED).update(
        status=Operation.Status.RUNNING,
        attempts=F("attempts") + 1,
        celery_task_id=task_id[:64],
        started_at=now,
        heartbeat_at=now,
    )
    if claimed != 1:
        return None
    return Operation.objects.values_list("attempts", flat=True).get(pk=operation_id)


def _fail(
    operation: Operation,
    deployment: Deployment,
    message: str,
    *,
    needs_attention: bool = False,
    attempt: Attempt | None = None,
) -> bool:
    """Record the failure, unless a newer attempt owns the operation (False then)."""
    if needs_attention:
        message = f"needs attention: {message}"
    with transaction.atomic():
        if attempt is not None and attempt.claim_outcome() is None:
            return False
        Operation.objects.filter(pk=operation.pk).update(
            status=Operation.Status.NEEDS_ATTENTION if needs_attention else Operation.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
        )
        if operation.params.get("rollout"):
            # The rollout's driver reads the outcome; the baseline still serves.
            audit(
                action="rollout.operation_failed",
                obj=deployment,
                details={"rollout": operation.params["rollout"], "operation": operation.pk, "error": message},
            )
            return True
        Deployment.objects.filter(pk=deployment.pk).update(
            status=Deployment.Status.FAILED, status_reason=message, updated_at=timezone.now()
        )
        audit(
            action="deployment.failed",
            obj=deployment,
            details={"operation": operation.pk, "kind": operation.kind, "error": message},
        )
        notifications.deployment_failed(deployment, message)
    return True


def retry_delay(attempt: int, retry_after: float | None) -> int:
    """Exponential from OPERATION_RETRY_BASE, at least what the target asked for,
    and below the broker's visibility timeout either way."""
    delay = settings.OPERATION_RETRY_BASE * 2 ** (attempt - 1)
    if retry_after:
        delay = max(delay, math.ceil(retry_after))
    return min(delay, MAX_RETRY_DELAY)


def _run(operation: Operation, deployment: Deployment, progress):
    """The adapter's part: (deploy result or None, observation or None)."""
    adapter = registry.adapter_for(deployment.target)
    ref = DeploymentRef.of(deployment)
    if operation.kind == Operation.Kind.DEPLOY:
        if deployment.repository is None and not operation.params.get("rollout"):
            raise TargetError("the repository was deleted", permanent=True)
        result = adapter.deploy(_spec(deployment, operation, adapter), progress)
        return result, adapter.status(ref)
    if operation.kind == Operation.Kind.RETIRE:
        adapter.retire(ref, operation.params["name"], progress)
        return None, adapter.status(ref)
    if operation.kind == Operation.Kind.TRAFFIC:
        adapter.set_traffic(ref, operation.params["traffic"], progress)
        return None, adapter.status(ref)
    if operation.kind == Operation.Kind.KEY:
        adapter.regenerate_key(ref, operation.params["key"], progress)
        return None, adapter.status(ref)
    adapter.delete(ref, progress)
    return None, None


def operation_execute(*, operation_id: int, task_id: str) -> Outcome:
    number = _claim(operation_id, task_id)
    if number is None:
        return Outcome(ran=False)  # another delivery has it, or it is finished
    attempt = Attempt(operation_id, number)
    operation = Operation.objects.select_related("deployment__target__environment", "deployment__repository").get(
        pk=operation_id
    )
    deployment = operation.deployment
    in_progress = Deployment.Status.DELETING if operation.kind == Operation.Kind.DELETE else Deployment.Status.DEPLOYING
    # Looking again at work Azure is still doing changes nothing: no event for it.
    following = operation.waits and operation.steps and _WAITING in operation.steps[-1]["message"]
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(status=in_progress, updated_at=timezone.now())
        if not following:
            audit(
                action="deployment.started",
                obj=deployment,
                details={"operation": operation.pk, "kind": operation.kind, "attempt": number},
            )
    try:
        with attempt.heartbeating():
            attempt.step(f"Attempt {number}: {operation.get_kind_display().lower()} on {deployment.target.name}")
            result, observation = _run(operation, deployment, attempt.step)
    except Superseded:
        log.warning("operation %s: attempt %s stopped, a newer attempt owns it", operation.pk, number)
        return Outcome(ran=True)
    except TargetError as exc:
        return _after_error(attempt, operation, deployment, exc)
    except StillInProgress as exc:
        return _after_wait(attempt, operation, deployment, exc)
    except Exception as exc:
        # A bug, not the target's answer: fail loudly rather than leave it running.
        log.exception("operation %s crashed", operation.pk)
        with contextlib.suppress(Superseded):
            attempt.step(f"Internal error: {type(exc).__name__}: {exc}")
        _fail(operation, deployment, f"internal error: {type(exc).__name__}: {exc}", attempt=attempt)
        return Outcome(ran=True)
    return _after_success(attempt, operation, deployment, result, observation)


def _after_error(attempt: Attempt, operation: Operation, deployment: Deployment, exc: TargetError) -> Outcome:
    try:
        if exc.permanent:
            attempt.step(f"Failed: {exc.message}")
            _fail(operation, deployment, exc.message, attempt=attempt)
            return Outcome(ran=True)
        tries = attempt.number - operation.waits
        if tries >= settings.OPERATION_MAX_ATTEMPTS:
            attempt.step(f"Transient error on attempt {tries}, the last one: {exc.message}")
            message = f"still failing after {tries} attempts: {exc.message}"
            _fail(operation, deployment, message, needs_attention=True, attempt=attempt)
            return Outcome(ran=True)
        delay = retry_delay(tries, exc.retry_after)
        attempt.step(f"Transient error, retrying in {delay} s: {exc.message}")
    except Superseded:
        return Outcome(ran=True)
    return _queue_again(attempt, operation, deployment, delay, error=exc.message)


def _queue_again(attempt: Attempt, operation: Operation, deployment: Deployment, delay: int, **fields) -> Outcome:
    """Queue the operation again in `delay` seconds, if this attempt still owns it."""
    with transaction.atomic():
        if attempt.claim_outcome() is None:
            return Outcome(ran=True)
        # Dated when its delayed message is due, so the reconciler only
        # re-sends it if that message is lost, and backoff is kept.
        Operation.objects.filter(pk=operation.pk).update(
            status=Operation.Status.QUEUED, enqueued_at=timezone.now() + timedelta(seconds=delay), **fields
        )
    queue.run_operation_later(operation_id=operation.pk, target=deployment.target, countdown=delay)
    return Outcome(ran=True, retry_in=delay)


def _after_wait(attempt: Attempt, operation: Operation, deployment: Deployment, exc: StillInProgress) -> Outcome:
    """The target is still at it: look again later, up to OPERATION_FOLLOW_FOR in all."""
    following = (timezone.now() - operation.created_at).total_seconds()
    try:
        if following > settings.OPERATION_FOLLOW_FOR:
            message = f"{exc.message} after {round(following / 60)} min; no longer followed"
            attempt.step(message)
            _fail(operation, deployment, message, needs_attention=True, attempt=attempt)
            return Outcome(ran=True)
        attempt.step(f"{exc.message}; {_WAITING} {exc.check_in} s")
    except Superseded:
        return Outcome(ran=True)
    return _queue_again(attempt, operation, deployment, exc.check_in, waits=F("waits") + 1)


def _after_success(attempt: Attempt, operation: Operation, deployment: Deployment, result, observation) -> Outcome:
    with transaction.atomic():
        if attempt.claim_outcome() is None:
            return Outcome(ran=True)  # a newer attempt owns it: its outcome stands
        Operation.objects.filter(pk=operation.pk).update(
            status=Operation.Status.SUCCEEDED, error="", finished_at=timezone.now()
        )
        if operation.kind == Operation.Kind.DEPLOY:
            locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
            if result.scoring_uri != locked.scoring_uri:
                locked.save(update_fields=move_address(locked, result.scoring_uri))
            _record_registration(locked, result.registered, rollout_repository(operation))
            details = {"operation": operation.pk, "scoring_uri": result.scoring_uri, "notes": result.notes}
            if operation.params.get("rollout"):
                details["rollout"] = operation.params["rollout"]
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
                details={"operation": operation.pk, **operation.params},
            )
        elif operation.kind == Operation.Kind.KEY:
            audit(
                action="deployment.key_regenerated",
                obj=deployment,
                details={"operation": operation.pk, "key": operation.params["key"]},
            )
        elif operation.kind == Operation.Kind.RETIRE:
            audit(
                action="deployment.retired",
                obj=deployment,
                details={"operation": operation.pk, **operation.params},
            )
        else:
            Deployment.objects.filter(pk=deployment.pk).update(
                status=Deployment.Status.DELETED,
                status_reason="",
                observed={},
                control_plane={},
                data_plane={},
                updated_at=timezone.now(),
            )
            audit(action="deployment.deleted", obj=deployment, details={"operation": operation.pk})
        _step_done(operation.pk)
    if observation is not None:
        apply_observation(deployment, observation)
    return Outcome(ran=True)


def _step_done(operation_id: int) -> None:
    """The last step, written with the outcome (the attempt no longer owns a RUNNING row)."""
    _note(operation_id, "Done")


def _note(operation_id: int, message: str) -> None:
    """A step written by whoever holds the row (the outcome's writer, the reaper)."""
    operation = Operation.objects.only("steps").get(pk=operation_id)
    steps = [*operation.steps, {"at": timezone.now().isoformat(), "message": message}][-MAX_STEPS:]
    Operation.objects.filter(pk=operation_id).update(steps=steps, heartbeat_at=timezone.now())


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
            if locked.tries >= settings.OPERATION_MAX_ATTEMPTS:
                message = f"its worker was lost {locked.tries} times; not retried again"
                _note(locked.pk, f"Needs attention: {message}")
                _fail(locked, operation.deployment, message, needs_attention=True)
                continue
            _note(locked.pk, f"Worker lost (no heartbeat since attempt {locked.attempts}'s last step); re-driving")
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
    With `host`, only that host's host-bound deployments. Each deployment is
    observed on its own: one that cannot be read is recorded as such and the
    round goes on."""
    figures = {"observed": 0, "changed": 0, "restarted": 0, "failed": 0}
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
            outcome = _observe_one(deployment, kind)
        except Exception:
            # A bug or an answer nobody translated: this deployment's round
            # ends here, recorded on it; the others are still observed.
            log.exception("observing deployment %s failed", deployment.pk)
            figures["failed"] += 1
            continue
        figures["observed"] += 1
        figures[outcome] = figures.get(outcome, 0) + 1
    for other in sorted(elsewhere):
        queue.observe_host(other)
    return figures


def _observe_one(deployment: Deployment, kind) -> str:
    """What the control plane says of one deployment: "changed", "unchanged",
    "restarted" or "failed" (it could not be read; recorded on it)."""
    # Where the health poller probes the data plane, the reconciler leaves it
    # to it (no probe here), but for the first reading (the poller has not seen it yet).
    probed_by_poller = kind.probe_for(deployment.mode) != Probe.ADAPTER and bool(deployment.data_plane)
    ref = DeploymentRef.of(deployment, probe=not probed_by_poller)
    try:
        observation = registry.adapter_for(deployment.target).status(ref)
    except TargetError as exc:
        record_control_error(deployment, exc.message)
        return "failed"
    if not observation.exists and kind.has(Capability.RESTART):
        return "restarted" if _restart(deployment, observation) else "unchanged"
    changed = apply_observation(deployment, observation, data=not probed_by_poller)
    return "changed" if changed else "unchanged"


def record_control_error(deployment: Deployment, message: str) -> None:
    """The target could not be read this round: said on the deployment,
    whose status stays (a throttled read says nothing about health)."""
    observation_record(
        deployment_id=deployment.pk, seen=Seen(control=control_failed(deployment.control_plane, message))
    )


# A server that ran this long (seconds) since it was last allowed to restart
# starts a new streak when it dies: one that dies minutes after each restart
# is not working, even if it answers in between.
RESTART_STREAK_ENDS = 600


def _restart(deployment: Deployment, observation: Observation) -> bool:
    """Restart a server that died, later each time it dies again soon after,
    and not at all after LOCAL_RESTART_LIMIT restarts in a row."""
    now = timezone.now()
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().select_related("target__environment").get(pk=deployment.pk)
        if locked.operations.filter(status__in=Operation.ACTIVE).exists():
            return False
        if locked.status == Deployment.Status.FAILED:
            return False
        if locked.restart_not_before and locked.restart_not_before > now:
            return False  # backing off; the reason says when
        if locked.restart_not_before and now - locked.restart_not_before > timedelta(seconds=RESTART_STREAK_ENDS):
            locked.restarts_in_a_row = 0  # it ran for a good while since: a new streak
        before = {"status": locked.status, "reason": locked.status_reason}
        locked.control_plane = control_json(observation)
        locked.observed = observed_view(locked.control_plane, locked.data_plane)
        if locked.restarts_in_a_row >= settings.LOCAL_RESTART_LIMIT:
            locked.status = Deployment.Status.FAILED
            locked.status_reason = (
                f"needs attention: the server died {locked.restarts_in_a_row + 1} times in a row without "
                f"coming up healthy; not restarted again ({observation.detail}). Redeploy once the cause is fixed."
            )
            locked.save(update_fields=["status", "status_reason", "control_plane", "observed", "updated_at"])
            audit(
                action="deployment.status_changed",
                obj=locked,
                before=before,
                after={"status": locked.status, "reason": locked.status_reason},
            )
            return False
        delay = settings.LOCAL_RESTART_BACKOFF * 2**locked.restarts_in_a_row
        locked.restarts += 1
        locked.restarts_in_a_row += 1
        locked.restart_not_before = now + timedelta(seconds=delay)
        locked.status = Deployment.Status.UNHEALTHY
        locked.status_reason = (
            f"{observation.detail}; restarting (restart {locked.restarts}, "
            f"{locked.restarts_in_a_row} in a row; the next one waits {delay} s)"
        )
        locked.save(
            update_fields=[
                "restarts",
                "restarts_in_a_row",
                "restart_not_before",
                "status",
                "status_reason",
                "control_plane",
                "observed",
                "updated_at",
            ]
        )
        audit(
            action="deployment.restarted",
            obj=locked,
            details={"restarts": locked.restarts, "in_a_row": locked.restarts_in_a_row, "why": observation.detail},
        )
        # A restart re-applies what was approved; it needs no new approval.
        start_operation(
            deployment=locked,
            kind=Operation.Kind.DEPLOY,
            actor=None,
            reason=f"restart {locked.restarts}: {observation.detail}",
        )
    return True


def reconcile() -> dict[str, int]:
    now = timezone.now()
    figures = {"reaped": _reap_stale(now), "resent": _resend_queued(now), "expired": requests_expire(now)}
    figures.update(observe())
    figures.update(rollout_driver.advance())
    figures["migrations_moved"] = migrations_settle()
    figures.update(load_tests_settle(now))
    figures.update(config_searches_settle(now))
    figures["scratch_removed"] = scratch_cleanup(host=settings.WORKER_HOST)
    return figures
