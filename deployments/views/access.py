"""Small access helpers shared by the page views."""

from django.core.exceptions import PermissionDenied


def require_perm(user, perm: str, message: str) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied(message)
