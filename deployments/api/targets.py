from django.http import JsonResponse

from deployments import policy
from deployments.api.auth import api_view
from deployments.api.responses import api_error, json_body
from deployments.errors import DomainError, NotAllowed
from deployments.models import Environment, Target
from deployments.services.permissions import require
from deployments.services.targets import target_adopt_request, target_create


def target_json(target: Target) -> dict:
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


@api_view("GET", "POST")
def targets(request):
    if request.method == "GET":
        if not policy.can_somewhere(request.user, "deployments.view_target"):
            raise NotAllowed("Seeing targets needs the viewer role or above.")
        rows = Target.objects.visible_to(request.user).select_related("environment")
        return JsonResponse({"results": [target_json(t) for t in rows]})
    require(request.user, "deployments.add_target", "Creating targets", role="admin")
    body = json_body(request)
    unknown = set(body) - {"name", "kind", "environment", "auth_method", "settings", "secrets"}
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.", path=sorted(unknown)[0])
    environment = Environment.objects.filter(name=body.get("environment")).first()
    if environment is None:
        raise DomainError("environment names an existing environment (e.g. dev, prod).", path="environment")
    target = target_create(
        actor=request.user,
        name=body.get("name", ""),
        kind=body.get("kind", ""),
        environment=environment,
        auth_method=body.get("auth_method", ""),
        settings=body.get("settings") or {},
        secrets=body.get("secrets"),
    )
    return JsonResponse(target_json(target), status=201)


@api_view("GET")
def environments(request):
    if not policy.can_somewhere(request.user, "deployments.view_environment"):
        raise NotAllowed("Seeing environments needs the viewer role or above.")
    rows = Environment.objects.visible_to(request.user).select_related("approver_group")
    return JsonResponse({"results": [environment_json(env) for env in rows]})


def environment_json(env) -> dict:
    return {
        "id": env.pk,
        "name": env.name,
        "approvals_required": env.approvals_required,
        "approver_group": env.approver_group.name if env.approver_group else None,
        "approval_lifetime_hours": env.approval_lifetime_hours,
        "approve_deletes": env.approve_deletes,
        "approve_traffic": env.approve_traffic,
        "webhook": bool(env.webhook_url),
    }


@api_view("POST")
def adopt(request, target_id: int):
    target = Target.objects.visible_to(request.user).filter(pk=target_id).first()
    if target is None:
        return api_error(404, "not_found", "No such target.")
    target_adopt_request(actor=request.user, target=target)
    return JsonResponse({"status": "listing"}, status=202)
