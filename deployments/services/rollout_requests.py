"""A rollout's way through approvals: let through (no approval asked, or
the last approval landed) or closed with its request. Apart from
services/rollouts.py so that approvals can call it without a cycle."""

from django.utils import timezone

from deployments.audit import audit
from deployments.errors import WrongState
from deployments.models import DeployRequest, Operation, Rollout
from deployments.rollouts import plan as rollout_plan
from deployments.services import notifications
from deployments.services.operation_start import start_operation

Status, Phase = Rollout.Status, Rollout.Phase


def rollout_begin(rollout: Rollout, *, actor, why: str) -> Operation:
    """Inside the caller's transaction: the plan is let through as it is now;
    the candidate's deploy is queued."""
    rollout.status, rollout.phase, rollout.released_digest = Status.RUNNING, Phase.CANDIDATE, rollout.plan_digest
    operation = start_operation(
        deployment=rollout.deployment,
        kind=Operation.Kind.DEPLOY,
        actor=actor,
        reason=f"rollout #{rollout.pk}: the candidate",
        params={"rollout": rollout.pk},
    )
    # The operation row carries the candidate's digest, not the deployment's.
    Operation.objects.filter(pk=operation.pk).update(spec_digest=rollout.candidate_digest)
    rollout.operation = operation
    rollout.save(update_fields=["status", "phase", "released_digest", "operation", "updated_at"])
    audit(
        action="rollout.started",
        actor=actor,
        obj=rollout.deployment,
        details={"rollout": rollout.pk, "plan_digest": rollout.plan_digest, "why": why, "operation": operation.pk},
    )
    notifications.rollout_event(rollout, "started", f"the candidate {rollout.candidate_name} is being deployed")
    return operation


def released_by_approval(request: DeployRequest) -> Operation:
    """The last approval of a rollout's request landed (approvals._release)."""
    rollout = Rollout.objects.select_for_update().get(pk=request.params["rollout"])
    if rollout.status != Status.PENDING_APPROVAL:
        raise WrongState(f"Rollout #{rollout.pk} is {rollout.get_status_display().lower()}; nothing to release.")
    if rollout_plan.digest_of(rollout) != request.spec_digest:
        raise WrongState("The plan changed after it was asked for; ask again.", code="plan_changed")
    return rollout_begin(rollout, actor=request.requested_by, why=f"approved request #{request.pk}")


def close_for_request(request: DeployRequest, why: str) -> None:
    """A rollout's request ended without approval (rejected, cancelled, expired, superseded)."""
    rollout_id = (request.params or {}).get("rollout")
    if request.kind != DeployRequest.Kind.ROLLOUT or not rollout_id:
        return
    rollout = Rollout.objects.select_for_update().filter(pk=rollout_id, status=Status.PENDING_APPROVAL).first()
    if rollout is not None:
        end_rollout(rollout, Status.ABORTED, why, actor=None)


def end_rollout(rollout: Rollout, status: str, why: str, *, actor) -> None:
    rollout.status, rollout.phase, rollout.reason = status, Phase.DONE, why
    rollout.finished_at = timezone.now()
    rollout.save(update_fields=["status", "phase", "reason", "finished_at", "updated_at"])
    audit(
        action=f"rollout.{status}",
        actor=actor,
        obj=rollout.deployment,
        details={"rollout": rollout.pk, "why": why},
    )
