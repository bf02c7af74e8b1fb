from django.db.models import Prefetch

from deployments.models import Deployment, ModelRepository


def _live_deployments():
    return Prefetch(
        "deployments",
        queryset=Deployment.objects.exclude(status=Deployment.Status.DELETED).select_related("target").order_by("name"),
        to_attr="live_deployments",
    )


def repository_list(user):
    """Repositories the user may see, newest first, with their model names and
    the deployments using them, in a fixed number of queries whatever the number of rows."""
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by")
        .prefetch_related("models", _live_deployments())
        .order_by("-uploaded_at", "-id")
    )


def repository_detail(user, repository_id: int) -> ModelRepository | None:
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by")
        .prefetch_related("models", _live_deployments())
        .filter(pk=repository_id)
        .first()
    )
