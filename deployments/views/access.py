"""Small access helpers shared by the page views."""

from django.core.exceptions import PermissionDenied

from deployments import policy


def require_perm(user, perm: str, message: str) -> None:
    """`perm` in at least one environment; which rows the user then sees is
    the querysets' `.visible_to(user)`."""
    if not policy.can_somewhere(user, perm):
        raise PermissionDenied(message)


def field_for(form, path: str) -> str | None:
    """The form field a domain error's path names ("resources.gpu_cores" -> "gpu_cores"), or None."""
    name = path.split(".")[-1]
    return name if name in form.fields else None
