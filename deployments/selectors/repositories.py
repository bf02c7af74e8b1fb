from django.db.models import Prefetch

from deployments.models import Deployment, ModelRepository


def _live_deployments(user):
    # Only those the user may see: a repository page must not name (or link
    # to) deployments in environments the user has no role in.
    live = Deployment.objects.visible_to(user).exclude(status__in=Deployment.TERMINAL)
    return Prefetch("deployments", queryset=live.select_related("target").order_by("name"), to_attr="live_deployments")


def repository_list(user):
    """Repositories the user may see, newest first, with their model names and
    the deployments using them, in a fixed number of queries whatever the number of rows."""
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by", "line")
        .prefetch_related("models", _live_deployments(user))
        .order_by("-uploaded_at", "-id")
    )


def repository_detail(user, repository_id: int) -> ModelRepository | None:
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by", "line")
        .prefetch_related("models", _live_deployments(user))
        .filter(pk=repository_id)
        .first()
    )
