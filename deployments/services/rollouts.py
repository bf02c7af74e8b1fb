"""Asking for rollouts and steering them: create (held for approval where
the environment asks), pause, resume, promote now, abort. Each is one
transaction that checks, saves and writes its audit event; the driver
(deployments/rollouts/driver.py) does the moving, on the reconciler's beat."""

import json

from django.utils import timezone

from deployments import policy
from deployments.audit import audit
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import atomic
from deployments.models import (
    Deployment,
    DeployRequest,
    GoldenRequest,
    ModelRepository,
    Operation,
    Rollout,
    RolloutStep,
)
from deployments.rollouts import plan as rollout_plan
from deployments.services import approvals, notifications
from deployments.services.deployments import changed_spec
from deployments.services.permissions import require
from deployments.services.rollout_requests import end_rollout, rollout_begin
from workers.targets import registry
from workers.targets.base import Capability, endpoint_deployment_name

Status, Phase = Rollout.Status, Rollout.Phase


def _lock_for_rollout(deployment: Deployment) -> Deployment:
    locked = Deployment.objects.select_for_update().select_related("target__environment").get(pk=deployment.pk)
    if locked.adopted or locked.repository_id is None:
        raise WrongState("This deployment has no recorded repository: a rollout needs a running spec to start from.")
    if locked.status not in Deployment.RUNNING or not locked.scoring_uri:
        raise WrongState(
            f"{locked.name} is {locked.get_status_display().lower()}: a rollout starts from a running deployment."
        )
    if locked.operations.filter(status__in=Operation.ACTIVE).exists():
        raise WrongState("An operation is under way for this deployment; wait for it to finish.")
    return locked


def plan_json(rollout: Rollout) -> dict:
    return {
        "spec_digest": rollout.candidate_digest,
        "steps": [{"traffic": s.traffic, "bake_seconds": s.bake_seconds} for s in rollout.steps.all()],
        "gates": rollout.gates,
        "golden_requests": len(rollout.golden_requests),
        "on_rollback": rollout.on_rollback,
        "plan_digest": rollout.plan_digest,
    }


@atomic
def rollout_create(
    *,
    deployment: Deployment,
    actor,
    steps,
    changes: dict | None = None,
    repository: ModelRepository | None = None,
    confirm_other_line: bool = False,
    gates=None,
    golden_requests=None,
    on_rollback: str = Rollout.OnRollback.KEEP,
) -> Rollout:
    environment = deployment.target.environment
    require(actor, "deployments.add_deployment", "Starting a rollout", environment=environment)
    registry.require(deployment.target, Capability.TRAFFIC)
    locked = _lock_for_rollout(deployment)
    repository, spec, digest = changed_spec(locked, changes, repository, confirm_other_line)
    if digest == locked.spec_digest:
        raise DomainError(
            "The candidate is the spec running now: change the repository revision or a spec field.", path="spec"
        )
    descriptor = locked.target.descriptor
    steps = rollout_plan.clean_steps(steps)
    gates = rollout_plan.clean_gates(gates, signals=descriptor.rollout_signals, has_reasons=descriptor.failure_reasons)
    if golden_requests and spec["mode"] == Deployment.Mode.ENTRY_SCRIPT:
        raise DomainError(
            "Golden requests call Triton's /v2 API; an entry-script candidate answers /score only.",
            path="golden_requests",
        )
    golden = rollout_plan.clean_golden(golden_requests, models=rollout_plan.models_of(repository))
    if on_rollback not in Rollout.OnRollback.values:
        raise DomainError("on_rollback is keep or remove.", path="on_rollback")
    previous = locked.rollouts.filter(status__in=Rollout.ACTIVE).select_for_update().first()
    if previous is not None and previous.status != Status.PENDING_APPROVAL:
        raise WrongState(
            f"Rollout #{previous.pk} is {previous.get_status_display().lower()}: let it finish, or abort it, first.",
            code="rollout_active",
        )
    if previous is not None:
        # A changed plan replaces the one waiting: approvals given to it do not carry over.
        end_rollout(previous, Status.ABORTED, "replaced by a newer plan before it was approved", actor=actor)
    digest_of_plan = rollout_plan.plan_digest(
        spec_digest=digest, steps=steps, gates=gates, golden_requests=golden, on_rollback=on_rollback
    )
    proposed = approvals.changed_spec_of(locked, repository, spec, digest)
    rollout = Rollout.objects.create(
        deployment=locked,
        spec=proposed,
        candidate_digest=digest,
        baseline_digest=locked.spec_digest,
        candidate_name=endpoint_deployment_name(digest),
        baseline_name=endpoint_deployment_name(locked.spec_digest),
        gates=gates,
        golden_requests=golden,
        on_rollback=on_rollback,
        plan_digest=digest_of_plan,
        created_by=actor,
    )
    RolloutStep.objects.bulk_create(
        RolloutStep(rollout=rollout, index=i, traffic=s["traffic"], bake_seconds=s["bake_seconds"])
        for i, s in enumerate(steps)
    )
    audit(action="rollout.requested", actor=actor, obj=locked, details={"rollout": rollout.pk, **plan_json(rollout)})
    if environment.needs_approval("rollout"):
        approvals.request_change(
            deployment=locked,
            kind=DeployRequest.Kind.ROLLOUT,
            actor=actor,
            spec={**proposed, "plan_digest": digest_of_plan},
            params={"rollout": rollout.pk, "plan_digest": digest_of_plan},
        )
        return rollout
    rollout_begin(rollout, actor=actor, why="no approval asked in this environment")
    return rollout


# --- steering ---------------------------------------------------------------------


def _locked(rollout: Rollout, actor, doing: str) -> Rollout:
    environment = rollout.deployment.target.environment
    require(actor, "deployments.add_deployment", doing, environment=environment)
    return Rollout.objects.select_for_update().select_related("deployment__target__environment").get(pk=rollout.pk)


@atomic
def rollout_pause(*, rollout: Rollout, actor) -> Rollout:
    locked = _locked(rollout, actor, "Pausing a rollout")
    if locked.status != Status.RUNNING or locked.phase not in (Phase.CANDIDATE, Phase.SHIFTING, Phase.BAKING):
        raise WrongState(f"Rollout #{locked.pk} is {_state(locked)}: only a running step can be paused.")
    locked.status = Status.PAUSED
    locked.save(update_fields=["status", "updated_at"])
    audit(action="rollout.paused", actor=actor, obj=locked.deployment, details={"rollout": locked.pk, **_where(locked)})
    notifications.rollout_event(locked, "paused", f"paused by {actor.get_username()}")
    return locked


@atomic
def rollout_resume(*, rollout: Rollout, actor) -> Rollout:
    locked = _locked(rollout, actor, "Resuming a rollout")
    if locked.status != Status.PAUSED:
        raise WrongState(f"Rollout #{locked.pk} is {_state(locked)}, not paused.")
    if rollout_plan.digest_of(locked) != locked.released_digest:
        raise WrongState(
            "The plan differs from the one approved: it cannot resume. Abort it, then ask for a new rollout.",
            code="plan_changed",
        )
    locked.status = Status.RUNNING
    fields = ["status", "updated_at"]
    if locked.phase == Phase.BAKING:
        # A paused bake says nothing of the minutes it was paused: the
        # step's window starts again, from its split asked for again.
        locked.phase, locked.operation = Phase.SHIFTING, None
        fields += ["phase", "operation"]
    locked.save(update_fields=fields)
    audit(
        action="rollout.resumed", actor=actor, obj=locked.deployment, details={"rollout": locked.pk, **_where(locked)}
    )
    notifications.rollout_event(locked, "resumed", f"resumed by {actor.get_username()}")
    return locked


@atomic
def rollout_promote(*, rollout: Rollout, actor) -> Rollout:
    """Straight to 100 % without the remaining bakes: where changes need
    approvals, it skips gates that were approved, so it takes an approver."""
    locked = _locked(rollout, actor, "Promoting a rollout")
    environment = locked.deployment.target.environment
    if environment.approvals_required and not policy.may_approve(actor, environment):
        raise NotAllowed(f"Promoting now skips approved gates: in {environment.name} it takes the approver role.")
    if locked.status not in (Status.RUNNING, Status.PAUSED) or locked.phase in (
        Phase.ROLLING_BACK,
        Phase.CLEANING_UP,
        Phase.FINISHING,
        Phase.DONE,
    ):
        raise WrongState(f"Rollout #{locked.pk} is {_state(locked)}: it cannot be promoted now.")
    if locked.phase == Phase.CANDIDATE:
        raise WrongState("The candidate is not deployed yet: promote once it serves its first step.")
    last = locked.steps.order_by("-index").first()
    locked.steps.filter(index__gte=max(locked.step_index, 0), status__in=["pending", "shifting", "baking"]).exclude(
        index=last.index
    ).update(status=RolloutStep.Status.SKIPPED, ended_at=timezone.now())
    locked.step_index, locked.phase, locked.status = last.index, Phase.SHIFTING, Status.RUNNING
    locked.promote_now = True
    locked.operation = None
    locked.save(update_fields=["step_index", "phase", "status", "promote_now", "operation", "updated_at"])
    audit(action="rollout.promote_requested", actor=actor, obj=locked.deployment, details={"rollout": locked.pk})
    return locked


@atomic
def rollout_abort(*, rollout: Rollout, actor, reason: str = "") -> Rollout:
    locked = _locked(rollout, actor, "Aborting a rollout")
    if locked.status == Status.PENDING_APPROVAL:
        approvals.cancel_pending(deployment=locked.deployment, actor=actor, why="its rollout was aborted")
        end_rollout(locked, Status.ABORTED, reason or f"aborted by {actor.get_username()} before approval", actor=actor)
        return locked
    if locked.status not in (Status.RUNNING, Status.PAUSED) or locked.phase in (
        Phase.ROLLING_BACK,
        Phase.CLEANING_UP,
        Phase.DONE,
    ):
        raise WrongState(f"Rollout #{locked.pk} is {_state(locked)}: nothing to abort.")
    if locked.phase == Phase.FINISHING:
        raise WrongState("The candidate already serves everything and the baseline is being retired.")
    why = reason.strip() or f"aborted by {actor.get_username()}"
    start_rollback(locked, ending=Status.ABORTED, why=why)
    audit(
        action="rollout.abort_requested", actor=actor, obj=locked.deployment, details={"rollout": locked.pk, "why": why}
    )
    return locked


def start_rollback(rollout: Rollout, *, ending: str, why: str) -> None:
    """Inside the caller's transaction: traffic goes back to the baseline
    (the driver queues it once no operation runs)."""
    rollout.status, rollout.phase, rollout.ending, rollout.reason = Status.RUNNING, Phase.ROLLING_BACK, ending, why
    rollout.operation = None
    rollout.save(update_fields=["status", "phase", "ending", "reason", "operation", "updated_at"])
    step = rollout.current_step
    if step is not None and step.status in (RolloutStep.Status.SHIFTING, RolloutStep.Status.BAKING):
        step.status, step.ended_at = RolloutStep.Status.FAILED, timezone.now()
        step.save(update_fields=["status", "ended_at"])


def _where(rollout: Rollout) -> dict:
    return {"phase": rollout.phase, "step": rollout.step_index + 1}


def _state(rollout: Rollout) -> str:
    if rollout.status == Status.RUNNING:
        return f"running ({rollout.get_phase_display().lower()})"
    return rollout.get_status_display().lower()


# --- golden requests ----------------------------------------------------------------

# A golden request is sent at every look of every rollout: kept small.
MAX_GOLDEN_BYTES = 64 * 1024


@atomic
def golden_request_save(*, deployment: Deployment, actor, name: str, request) -> GoldenRequest:
    require(actor, "deployments.add_deployment", "Saving golden requests", environment=deployment.target.environment)
    if deployment.repository is None:
        raise WrongState("This deployment has no recorded repository to check the request against.")
    name = (name or "").strip()[:100]
    if not name:
        raise DomainError("Give the golden request a name.", path="name")
    if len(json.dumps(request)) > MAX_GOLDEN_BYTES:
        raise DomainError(
            f"This call is larger than {MAX_GOLDEN_BYTES // 1024} KB: a golden request is sent at every look of a "
            "rollout, so keep it small.",
            path="request",
        )
    clean = rollout_plan.clean_golden(
        [{**request, "name": name}], models=rollout_plan.models_of(deployment.repository)
    )[0]
    golden, created = GoldenRequest.objects.update_or_create(
        deployment=deployment, name=name, defaults={"request": clean, "created_by": actor}
    )
    audit(
        action="deployment.golden_request_saved",
        actor=actor,
        obj=deployment,
        details={"golden_request": golden.pk, "name": name, "model": clean["model"], "replaced": not created},
    )
    return golden


@atomic
def golden_request_delete(*, golden: GoldenRequest, actor) -> None:
    deployment = golden.deployment
    environment = deployment.target.environment
    require(actor, "deployments.add_deployment", "Removing golden requests", environment=environment)
    audit(action="deployment.golden_request_removed", actor=actor, obj=deployment, details={"name": golden.name})
    golden.delete()
