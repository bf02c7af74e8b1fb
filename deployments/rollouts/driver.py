"""The rollout state machine, moved one look at a time by the reconciler.

Every look reads the rollout row, does what its phase asks (queue an
operation, read the figures, judge them) and records the outcome in one
transaction, checking first that nothing moved the row meanwhile. All
state is in the database: a worker killed anywhere leaves a row that the
next look carries on from (an operation it queued is re-driven by the
engine; a bake that was under way goes on from its recorded start).

Phases: candidate (its deploy at 0 %) -> shifting (step i's split) ->
baking (gates judged at every look; a failure rolls back at once, a pass
needs the whole bake) -> next step ... -> finishing (the deployment takes
the candidate's spec and the baseline is retired) -> promoted. A rollback
sends all traffic to the baseline, then removes the candidate if the plan
says so.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments import spec as deployment_spec
from deployments.audit import audit
from deployments.models import Deployment, ModelRepository, Operation, Rollout, RolloutStep
from deployments.rollouts import figures as rollout_figures
from deployments.rollouts import gates as rollout_gates
from deployments.rollouts import golden as golden_requests
from deployments.rollouts import plan as rollout_plan
from deployments.services import notifications
from deployments.services.operation_start import start_operation
from deployments.services.rollouts import start_rollback
from workers.targets import registry
from workers.targets.base import DeploymentRef, TargetError

log = logging.getLogger(__name__)
Status, Phase = Rollout.Status, Rollout.Phase
StepStatus = RolloutStep.Status
# Points kept per step for the page's charts.
MAX_SERIES = 240


def advance(*, host: str | None = None) -> dict[str, int]:
    """One look at every running rollout this process may drive (as the
    reconciler observes: a host-bound kind's on its own host only, since
    its figures are read from that host's servers); how many moved."""
    moved = 0
    running = Rollout.objects.filter(status=Status.RUNNING).select_related("deployment__target")
    for rollout in running:
        kind = rollout.deployment.target.descriptor
        where = registry.target_host(rollout.deployment.target) if kind.host_bound else None
        if where != host and not (host is None and where == settings.WORKER_HOST):
            continue
        rollout_id = rollout.pk
        try:
            moved += bool(advance_one(rollout_id))
        except Exception:
            # One rollout's bug must not stop the others (nor the reconciler).
            log.exception("rollout %s: the look failed", rollout_id)
    return {"rollouts_moved": moved}


def advance_one(rollout_id: int) -> bool:
    rollout = Rollout.objects.select_related("deployment__target__environment", "operation").get(pk=rollout_id)
    if rollout.status != Status.RUNNING:
        return False
    moving_forward = rollout.phase in (Phase.CANDIDATE, Phase.SHIFTING, Phase.BAKING, Phase.FINISHING)
    if moving_forward and rollout_plan.digest_of(rollout) != rollout.released_digest:
        return _stop_changed_plan(rollout)
    look = {
        Phase.CANDIDATE: _candidate,
        Phase.SHIFTING: _shifting,
        Phase.BAKING: _baking,
        Phase.FINISHING: _finishing,
        Phase.ROLLING_BACK: _rolling_back,
        Phase.CLEANING_UP: _cleaning_up,
    }.get(rollout.phase)
    return bool(look and look(rollout))


# --- moving under a lock -----------------------------------------------------------


class _Moved(Exception):
    """The row changed since it was read: this look does nothing."""


def _locked(rollout: Rollout) -> Rollout:
    """Inside a transaction: the row, still as this look read it."""
    locked = Rollout.objects.select_for_update().select_related("deployment__target__environment").get(pk=rollout.pk)
    if (locked.status, locked.phase, locked.step_index, locked.operation_id) != (
        rollout.status,
        rollout.phase,
        rollout.step_index,
        rollout.operation_id,
    ):
        raise _Moved
    return locked


def _operation_state(rollout: Rollout) -> str:
    """'none', 'active', 'succeeded' or 'failed' for the operation the rollout waits on."""
    if rollout.operation_id is None:
        return "none"
    status = Operation.objects.values_list("status", flat=True).get(pk=rollout.operation_id)
    if status in Operation.ACTIVE:
        return "active"
    return "succeeded" if status == Operation.Status.SUCCEEDED else "failed"


def _queue(rollout: Rollout, kind: str, reason: str, params: dict) -> bool:
    """Queue the rollout's next operation, unless one (the rollout's or a
    person's) is under way for the deployment: then the next look tries again."""
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            deployment = Deployment.objects.select_for_update().get(pk=locked.deployment_id)
            if deployment.operations.filter(status__in=Operation.ACTIVE).exists():
                return False
            operation = start_operation(
                deployment=deployment,
                kind=kind,
                actor=None,
                reason=f"rollout #{locked.pk}: {reason}",
                params={"rollout": locked.pk, **params},
            )
            locked.operation = operation
            locked.save(update_fields=["operation", "updated_at"])
    except _Moved:
        return False
    return True


def _operation_error(rollout: Rollout) -> str:
    return Operation.objects.values_list("error", flat=True).get(pk=rollout.operation_id) or "the operation failed"


# --- phases ------------------------------------------------------------------------


def _candidate(rollout: Rollout) -> bool:
    state = _operation_state(rollout)
    if state == "active":
        return False
    if state == "none":
        return _queue(rollout, Operation.Kind.DEPLOY, "the candidate", {})
    if state == "failed":
        why = f"the candidate could not be deployed: {_operation_error(rollout)}"
        return _roll_back(rollout, ending=Status.FAILED, why=why, event="failed")
    return _next_step(rollout, first=True)


def _next_step(rollout: Rollout, *, first: bool = False) -> bool:
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            locked.step_index = 0 if first else locked.step_index + 1
            locked.phase, locked.operation = Phase.SHIFTING, None
            locked.save(update_fields=["step_index", "phase", "operation", "updated_at"])
            step = locked.steps.get(index=locked.step_index)
            step.status = StepStatus.SHIFTING
            step.save(update_fields=["status"])
            audit(
                action="rollout.step_started",
                obj=locked.deployment,
                details={"rollout": locked.pk, "step": step.index + 1, "traffic": step.traffic},
            )
    except _Moved:
        return False
    return True


def _split(rollout: Rollout, share: int) -> dict[str, int]:
    return {rollout.baseline_name: 100 - share, rollout.candidate_name: share}


def _shifting(rollout: Rollout) -> bool:
    step = rollout.current_step
    state = _operation_state(rollout)
    if state == "active":
        return False
    if state == "none" or (state == "succeeded" and not _is_traffic_for(rollout, step)):
        # The window's start is read before the split moves (the candidate
        # has had no traffic yet), so the bake can start the moment the
        # split is in place, not a look later.
        if not rollout.promote_now and not _save_start(rollout):
            return False
        return _queue(
            rollout,
            Operation.Kind.TRAFFIC,
            f"step {step.index + 1}, {step.traffic}%",
            {"traffic": _split(rollout, step.traffic), "step": step.index + 1},
        )
    if state == "failed":
        why = f"step {step.index + 1}'s traffic could not be set: {_operation_error(rollout)}"
        return _roll_back(rollout, ending=Status.FAILED, why=why, event="failed")
    if rollout.promote_now:
        return _finish(rollout, step, verdict={"passed": True, "checks": [], "promoted_now": True})
    in_place = Operation.objects.values_list("finished_at", flat=True).get(pk=rollout.operation_id)
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            step = locked.steps.select_for_update().get(index=locked.step_index)
            step.status, step.started_at = StepStatus.BAKING, in_place or timezone.now()
            step.figures, step.verdict = {}, {}
            step.save(update_fields=["status", "started_at", "figures", "verdict"])
            locked.phase = Phase.BAKING
            locked.save(update_fields=["phase", "updated_at"])
            audit(
                action="rollout.step_baking",
                obj=locked.deployment,
                details={
                    "rollout": locked.pk,
                    "step": step.index + 1,
                    "traffic": _split(locked, step.traffic),
                    "bake_seconds": step.bake_seconds,
                },
            )
            notifications.rollout_event(
                locked, "step", f"step {step.index + 1}: {step.traffic}% of the traffic for {step.bake_seconds} s"
            )
    except _Moved:
        return False
    # Judged at once: the split has been in place since the operation ended.
    _baking(_fresh(rollout))
    return True


def _save_start(rollout: Rollout) -> bool:
    """Both sides' counters, as the step's window starts from them."""
    try:
        start = {side: _read(rollout, name).as_json() for side, name in _sides(rollout)}
    except TargetError as exc:
        _note_error(rollout, exc)
        return False
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            locked.steps.filter(index=locked.step_index).update(counters_at_start=start)
    except _Moved:
        return False
    return True


def _fresh(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_related("deployment__target__environment", "operation").get(pk=rollout.pk)


def _is_traffic_for(rollout: Rollout, step: RolloutStep) -> bool:
    """Whether the operation the rollout waits on set this step's split (not an earlier one's)."""
    params = Operation.objects.values_list("params", flat=True).get(pk=rollout.operation_id)
    return params.get("traffic") == _split(rollout, step.traffic)


def _sides(rollout: Rollout):
    return (("baseline", rollout.baseline_name), ("candidate", rollout.candidate_name))


def _ref(rollout: Rollout) -> DeploymentRef:
    return DeploymentRef.of(rollout.deployment, probe=False)


def _read(rollout: Rollout, name: str):
    return registry.adapter_for(rollout.deployment.target).read_counters(_ref(rollout), name)


def _note_error(rollout: Rollout, exc: TargetError) -> None:
    """A look that could not read the figures: said on the rollout, tried again next look."""
    Rollout.objects.filter(pk=rollout.pk).update(reason=f"reading the figures: {exc.message}")


def _window(rollout: Rollout, step: RolloutStep) -> tuple[dict, dict]:
    """Both sides' figures since the bake began, and the sources behind them."""
    adapter = registry.adapter_for(rollout.deployment.target)
    ref, now = _ref(rollout), timezone.now()
    found = {}
    for side, name in _sides(rollout):
        end = adapter.read_counters(ref, name)
        start = rollout_figures.Counters.from_json(step.counters_at_start.get(side, {}))
        window = adapter.window_figures(ref, name, step.started_at, now)
        found[side] = rollout_figures.between(start, end, window=window)
    return found, dict(rollout.deployment.target.descriptor.rollout_signals)


def _golden(rollout: Rollout) -> list[dict]:
    if not rollout.golden_requests:
        return []
    deployment = rollout.deployment
    from deployments import crypto
    from deployments.console.infer import base_url

    key = crypto.decrypt(deployment.key_encrypted) if deployment.key_encrypted else ""
    return golden_requests.run(
        base_url=base_url(deployment), key=key, deployment_name=rollout.candidate_name, requests=rollout.golden_requests
    )


def _baking(rollout: Rollout) -> bool:
    step = rollout.current_step
    try:
        found, sources = _window(rollout, step)
    except TargetError as exc:
        _note_error(rollout, exc)
        return False
    golden = _golden(rollout)
    verdict = rollout_gates.judge(rollout.gates, found["baseline"], found["candidate"], golden, sources=sources)
    verdict["golden"] = [{k: v for k, v in result.items() if k != "outputs"} for result in golden]
    now = timezone.now()
    baked = (now - step.started_at).total_seconds() >= step.bake_seconds
    point = {"at": now.isoformat(), **found}
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            step = locked.steps.select_for_update().get(index=locked.step_index)
            step.figures, step.verdict = found, verdict
            step.series = [*step.series, point][-MAX_SERIES:]
            step.save(update_fields=["figures", "verdict", "series"])
            if locked.reason.startswith("reading the figures"):
                locked.reason = ""
                locked.save(update_fields=["reason", "updated_at"])
    except _Moved:
        return False
    if not verdict["passed"]:
        failed = ", ".join(c["gate"] for c in verdict["checks"] if c["passed"] is False)
        why = f"step {step.index + 1} ({step.traffic}%): gate {failed} failed"
        return _roll_back(rollout, ending=Status.ROLLED_BACK, why=why, event="rolled_back", verdict=verdict)
    if not baked:
        return True
    return _finish(rollout, step, verdict=verdict)


def _finish(rollout: Rollout, step: RolloutStep, *, verdict: dict) -> bool:
    """The step passed: on to the next, or, after the last, to finishing."""
    last = not rollout.steps.filter(index__gt=step.index).exists()
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            step = locked.steps.select_for_update().get(index=locked.step_index)
            step.status, step.ended_at = StepStatus.PASSED, timezone.now()
            step.verdict = {**verdict, "final": True}
            step.save(update_fields=["status", "ended_at", "verdict"])
            audit(
                action="rollout.step_passed",
                obj=locked.deployment,
                details={
                    "rollout": locked.pk,
                    "step": step.index + 1,
                    "traffic": step.traffic,
                    "figures": step.figures,
                    "checks": verdict["checks"],
                    "promoted_now": bool(verdict.get("promoted_now")),
                },
            )
            if last:
                _take_candidate_spec(locked)
                locked.phase, locked.operation = Phase.FINISHING, None
                locked.save(update_fields=["phase", "operation", "updated_at"])
    except _Moved:
        return False
    notifications.rollout_event(rollout, "step_passed", f"step {step.index + 1} ({step.traffic}%) passed its gates")
    if last:
        _finishing(_fresh(rollout))
        return True
    if _next_step(_fresh(rollout)):
        _shifting(_fresh(rollout))  # the next split is asked for in this look too
    return True


def _take_candidate_spec(rollout: Rollout) -> None:
    """The deployment's desired spec becomes the candidate's: it serves all traffic now."""
    deployment = Deployment.objects.select_for_update().get(pk=rollout.deployment_id)
    spec = rollout.spec
    repository = ModelRepository.objects.filter(pk=spec["repository_id"]).first()
    before = {"spec_digest": deployment.spec_digest, "repository_revision": deployment.repository_revision}
    deployment.repository = repository
    deployment.repository_name = spec["repository_name"]
    deployment.repository_revision = spec["repository_revision"]
    deployment.repository_digest = spec["repository_digest"]
    for field in deployment_spec.SPEC_FIELDS:
        setattr(deployment, field, spec[field])
    deployment.spec_digest = rollout.candidate_digest
    deployment.save()
    audit(
        action="deployment.spec_promoted",
        obj=deployment,
        before=before,
        after={"spec_digest": rollout.candidate_digest, "repository_revision": spec["repository_revision"]},
        details={"rollout": rollout.pk},
    )


def _finishing(rollout: Rollout) -> bool:
    state = _operation_state(rollout)
    if state == "active":
        return False
    if state == "none":
        return _queue(rollout, Operation.Kind.RETIRE, "retiring the baseline", {"name": rollout.baseline_name})
    why = "" if state == "succeeded" else f"the baseline could not be removed: {_operation_error(rollout)}"
    return _close(rollout, Status.PROMOTED, why, event="promoted")


def _roll_back(rollout: Rollout, *, ending: str, why: str, event: str, verdict: dict | None = None) -> bool:
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            start_rollback(locked, ending=ending, why=why)
            audit(
                action="rollout.gate_failed" if verdict else "rollout.rolling_back",
                obj=locked.deployment,
                details={
                    "rollout": locked.pk,
                    "step": locked.step_index + 1,
                    "why": why,
                    **({"checks": verdict["checks"], "golden": verdict.get("golden", [])} if verdict else {}),
                },
            )
    except _Moved:
        return False
    notifications.rollout_event(rollout, "rolling_back", why)
    # Traffic goes back in this look, not the next.
    _rolling_back(_fresh(rollout))
    return True


def _rolling_back(rollout: Rollout) -> bool:
    state = _operation_state(rollout)
    if state == "active":
        return False
    back = {rollout.baseline_name: 100, rollout.candidate_name: 0}
    if state == "none":
        if not _candidate_has_traffic(rollout):
            return _after_rollback(rollout)
        return _queue(rollout, Operation.Kind.TRAFFIC, "rollback", {"traffic": back})
    if state == "failed":
        # Traffic still reaches the candidate: try again, and say so.
        Rollout.objects.filter(pk=rollout.pk).update(
            operation=None, reason=f"{rollout.reason}; the rollback's traffic change failed, retrying"
        )
        return True
    return _after_rollback(rollout)


def _candidate_has_traffic(rollout: Rollout) -> bool:
    """Whether any step shifted traffic to the candidate (none did if its deploy failed)."""
    return rollout.step_index >= 0


def _after_rollback(rollout: Rollout) -> bool:
    if rollout.on_rollback == Rollout.OnRollback.REMOVE:
        try:
            with transaction.atomic():
                locked = _locked(rollout)
                locked.phase, locked.operation = Phase.CLEANING_UP, None
                locked.save(update_fields=["phase", "operation", "updated_at"])
        except _Moved:
            return False
        return True
    return _close(rollout, rollout.ending or Status.ROLLED_BACK, "", event=rollout.ending or "rolled_back")


def _cleaning_up(rollout: Rollout) -> bool:
    state = _operation_state(rollout)
    if state == "active":
        return False
    if state == "none":
        return _queue(rollout, Operation.Kind.RETIRE, "removing the candidate", {"name": rollout.candidate_name})
    extra = "" if state == "succeeded" else f"; the candidate could not be removed: {_operation_error(rollout)}"
    return _close(rollout, rollout.ending or Status.ROLLED_BACK, extra, event=rollout.ending or "rolled_back")


def _close(rollout: Rollout, status: str, extra: str, *, event: str) -> bool:
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            locked.status, locked.phase = status, Phase.DONE
            locked.reason = "; ".join(part for part in (locked.reason, extra) if part)
            locked.finished_at, locked.operation = timezone.now(), None
            locked.save(update_fields=["status", "phase", "reason", "finished_at", "operation", "updated_at"])
            audit(
                action=f"rollout.{status}",
                obj=locked.deployment,
                details={"rollout": locked.pk, "why": locked.reason, "candidate": locked.candidate_name},
            )
    except _Moved:
        return False
    what = {"promoted": "the candidate serves all traffic; the baseline is retired"}.get(
        status, f"traffic is back on the baseline {rollout.baseline_name}: {locked.reason}"
    )
    notifications.rollout_event(locked, event, what)
    return True


def _stop_changed_plan(rollout: Rollout) -> bool:
    """Someone changed the plan behind the services' back: it moves no further."""
    why = (
        f"the plan's digest is {rollout_plan.digest_of(rollout)[:12]}, but {rollout.released_digest[:12]} was "
        "approved: it runs no further until a new plan is approved"
    )
    try:
        with transaction.atomic():
            locked = _locked(rollout)
            locked.status, locked.reason = Status.PAUSED, why
            locked.save(update_fields=["status", "reason", "updated_at"])
            audit(action="rollout.plan_mismatch", obj=locked.deployment, details={"rollout": locked.pk, "why": why})
    except _Moved:
        return False
    notifications.rollout_event(rollout, "paused", why)
    return True
