from django.db.models import F, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce, Greatest

from deployments.models import Deployment, DeployRequest, HealthSample, Operation
from workers.targets import registry
from workers.targets.base import Capability, DeploymentRef, TargetError


def _requests():
    # Newest first: the deployment's approval state is the first one.
    return Prefetch(
        "requests",
        queryset=DeployRequest.objects.order_by("-id").prefetch_related("approvals"),
        to_attr="latest_requests",
    )


def visible_deployments(user, *, target: str = "", status: str = "", environment: str = "", name: str = ""):
    """Deployments the user may see, filtered by target, environment or
    deployment name and by status, with what a list shows of each (their
    approval state) in a fixed number of queries. Unordered."""
    deployments = (
        Deployment.objects.visible_to(user)
        .select_related("target__environment", "repository")
        .prefetch_related(_requests())
    )
    for field, value in (
        ("target__name", target),
        ("target__environment__name", environment),
        ("name", name),
        ("status", status),
    ):
        if value:
            deployments = deployments.filter(**{field: value})
    return deployments


def deployment_list(user, **filters):
    """The Deployments page's rows: newest change first, with when that was."""
    return visible_deployments(user, **filters).annotate(changed_at=_last_change()).order_by("-updated_at", "-id")


def _last_change():
    """When something last happened to it: a status change or an operation.
    Not updated_at, which every health check moves."""
    sample = HealthSample.objects.filter(deployment=OuterRef("pk")).order_by("-at").values("at")[:1]
    operation = Operation.objects.filter(deployment=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return Greatest(
        Coalesce(Subquery(sample), F("created_at")),
        Coalesce(Subquery(operation), F("created_at")),
    )


def deployment_detail(user, deployment_id: int) -> Deployment | None:
    return (
        Deployment.objects.visible_to(user)
        .select_related("target__environment", "repository", "created_by")
        .prefetch_related(
            Prefetch("operations", queryset=Operation.objects.order_by("-created_at", "-id")), _requests()
        )
        .filter(pk=deployment_id)
        .first()
    )


def server_log(deployment: Deployment, tail: int) -> list[str]:
    """The tail of the target's server log; a target that cannot answer now
    says why in the one line returned. Kinds without logs: registry.Unsupported."""
    registry.require(deployment.target, Capability.LOGS)
    try:
        return registry.adapter_for(deployment.target).logs(DeploymentRef.of(deployment), tail)
    except TargetError as exc:
        return [f"(logs unavailable: {exc.message})"]


def delete_needs_approval(deployment: Deployment) -> bool:
    """What a delete does: go to approval (a deployment that ever ran, in an
    environment that wants deletes approved) or stop the server now."""
    return (
        deployment.target.environment.needs_approval("delete")
        and deployment.operations.filter(kind=Operation.Kind.DEPLOY).exists()
    )
