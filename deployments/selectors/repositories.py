from deployments.models import ModelRepository


def repository_list(user):
    """Repositories the user may see, newest first, with their model names,
    in a fixed number of queries whatever the number of rows."""
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by")
        .prefetch_related("models")
        .order_by("-uploaded_at", "-id")
    )


def repository_detail(user, repository_id: int) -> ModelRepository | None:
    return (
        ModelRepository.objects.visible_to(user)
        .select_related("uploaded_by")
        .prefetch_related("models")
        .filter(pk=repository_id)
        .first()
    )
