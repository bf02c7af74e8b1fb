"""Rollouts for pipelines: start one on a deployment, follow it, steer it.
The same services as the pages; approvals go through the deployment's
approve endpoint, which approves its pending request whatever its kind."""

from django.http import HttpRequest
from ninja import Router, Status

from deployments.api.bodies import RolloutAbort, RolloutCreate
from deployments.api.deployments import _visible, spec_change
from deployments.api.errors import NotFound
from deployments.api.schemas import Rollout, RolloutPage, answers, changes
from deployments.selectors.rollouts import rollout_or_none
from deployments.serializers import rollout_json
from deployments.services import rollouts as steering

router = Router(tags=["rollouts"])


def _rollout(request, rollout_id: int):
    found = rollout_or_none(request.user, rollout_id)
    if found is None:
        raise NotFound("No such rollout.")
    return found


@router.post(
    "deployments/{int:deployment_id}/rollouts",
    response=changes({201: Rollout}, 404),
    url_name="deployment-rollouts",
)
def rollout_create(request: HttpRequest, deployment_id: int, body: RolloutCreate):
    """Start a rollout of a changed spec: the candidate runs beside what
    serves now and takes each step's share of the traffic for its bake time
    while the gates pass. Where the environment asks for approvals, the plan
    (spec, steps, gates, golden requests) waits for them first
    (`status` pending_approval)."""
    rollout = steering.rollout_create(
        deployment=_visible(request, deployment_id),
        actor=request.user,
        **spec_change(request, body.spec),
        steps=[step.model_dump() for step in body.steps],
        gates=body.gates,
        golden_requests=body.golden_requests,
        on_rollback=body.on_rollback,
    )
    return Status(201, rollout_json(rollout))


@router.get("deployments/{int:deployment_id}/rollouts", response=answers({200: RolloutPage}, 404))
def rollout_list(request: HttpRequest, deployment_id: int):
    """The deployment's rollouts, newest first."""
    found = _visible(request, deployment_id)
    return {"results": [rollout_json(r) for r in found.rollouts.prefetch_related("steps")[:50]]}


@router.get("rollouts/{int:rollout_id}", response=answers({200: Rollout}, 404), url_name="rollout")
def rollout_detail(request: HttpRequest, rollout_id: int):
    return rollout_json(_rollout(request, rollout_id))


def _steer(request, rollout_id: int, service, **extra):
    return rollout_json(service(rollout=_rollout(request, rollout_id), actor=request.user, **extra))


@router.post("rollouts/{int:rollout_id}/pause", response=changes({200: Rollout}, 404), url_name="rollout-pause")
def rollout_pause(request: HttpRequest, rollout_id: int):
    """Hold the traffic where it is; nothing is judged until it resumes."""
    return _steer(request, rollout_id, steering.rollout_pause)


@router.post("rollouts/{int:rollout_id}/resume", response=changes({200: Rollout}, 404), url_name="rollout-resume")
def rollout_resume(request: HttpRequest, rollout_id: int):
    """Go on; the paused step's bake window starts again. 409 `plan_changed`
    if the plan differs from the approved one."""
    return _steer(request, rollout_id, steering.rollout_resume)


@router.post("rollouts/{int:rollout_id}/promote", response=changes({200: Rollout}, 404), url_name="rollout-promote")
def rollout_promote(request: HttpRequest, rollout_id: int):
    """All traffic to the candidate now, without the remaining bakes (an
    approver's decision where the environment asks for approvals)."""
    return _steer(request, rollout_id, steering.rollout_promote)


@router.post("rollouts/{int:rollout_id}/abort", response=changes({200: Rollout}, 404), url_name="rollout-abort")
def rollout_abort(request: HttpRequest, rollout_id: int, body: RolloutAbort = None):
    """Send all traffic back to the baseline (a waiting plan is simply withdrawn)."""
    return _steer(request, rollout_id, steering.rollout_abort, reason=body.reason if body else "")
