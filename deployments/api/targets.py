from django.http import HttpRequest
from ninja import Router, Status

from deployments import policy
from deployments.api.bodies import TargetCreate
from deployments.api.errors import NotFound
from deployments.api.schemas import EnvironmentList, Listing, Target, TargetList, answers, changes
from deployments.errors import DomainError, NotAllowed
from deployments.models import Environment
from deployments.models import Target as TargetRow
from deployments.services.permissions import require
from deployments.services.targets import target_adopt_request, target_create

router = Router(tags=["targets"])


def target_json(target: TargetRow) -> dict:
    # Never the secrets: only whether one is stored.
    return {
        "id": target.pk,
        "name": target.name,
        "kind": target.kind,
        "environment": target.environment.name,
        "auth_method": target.auth_method,
        "settings": target.settings,
        "has_secrets": target.has_secrets,
        "last_test": target.last_test,
    }


def environment_json(env) -> dict:
    return {
        "id": env.pk,
        "name": env.name,
        "approvals_required": env.approvals_required,
        "approver_group": env.approver_group.name if env.approver_group else None,
        "approval_lifetime_hours": env.approval_lifetime_hours,
        "approve_deletes": env.approve_deletes,
        "approve_traffic": env.approve_traffic,
        "require_rollouts": env.require_rollouts,
        "load_tests": env.load_tests,
        "webhook": bool(env.webhook_url),
    }


@router.get("targets", response=answers({200: TargetList}), url_name="targets")
def target_list(request: HttpRequest):
    if not policy.can_somewhere(request.user, "deployments.view_target"):
        raise NotAllowed("Seeing targets needs the viewer role or above.")
    rows = TargetRow.objects.visible_to(request.user).select_related("environment")
    return {"results": [target_json(t) for t in rows]}


@router.post("targets", response=changes({201: Target}))
def target_add(request: HttpRequest, body: TargetCreate):
    """Admins only. `secrets` are write-only: answers say only whether some are stored."""
    require(request.user, "deployments.add_target", "Creating targets", role="admin")
    environment = Environment.objects.filter(name=body.environment).first()
    if environment is None:
        raise DomainError("environment names an existing environment (e.g. dev, prod).", path="environment")
    target = target_create(
        actor=request.user,
        name=body.name,
        kind=body.kind,
        environment=environment,
        auth_method=body.auth_method,
        settings=body.settings,
        secrets=body.secrets,
    )
    return Status(201, target_json(target))


@router.get("environments", response=answers({200: EnvironmentList}), url_name="environments")
def environment_list(request: HttpRequest):
    """Environments with their approval policy."""
    if not policy.can_somewhere(request.user, "deployments.view_environment"):
        raise NotAllowed("Seeing environments needs the viewer role or above.")
    rows = Environment.objects.visible_to(request.user).select_related("approver_group")
    return {"results": [environment_json(env) for env in rows]}


@router.post("targets/{int:target_id}/adopt", response=changes({202: Listing}, 404), url_name="target-adopt")
def target_adopt(request: HttpRequest, target_id: int):
    """List an SDK v1 target's webservices and adopt the ones the dashboard does not know."""
    target = TargetRow.objects.visible_to(request.user).filter(pk=target_id).first()
    if target is None:
        raise NotFound("No such target.")
    target_adopt_request(actor=request.user, target=target)
    return Status(202, {"status": "listing"})
