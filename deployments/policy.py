"""Who may do what, and where.

A user's global role (a group from roles.py) applies in every environment;
an EnvironmentMembership adds a role in one environment only, so someone
can deploy to dev and only watch prod. Every permission question goes
through here: the services' checks, and `.visible_to(user)` on querysets.
"""

from deployments.roles import ROLE_PERMISSIONS

APPROVE = "deployments.approve_deployrequest"


def _environment_roles(user) -> dict[int, str]:
    # Cached on the user object: one query per request however many checks.
    cached = getattr(user, "_environment_roles", None)
    if cached is None:
        # Through the user's relation: policy imports no model, so models may import policy.
        cached = dict(user.memberships.values_list("environment_id", "role"))
        user._environment_roles = cached
    return cached


def _active(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def environments_with(user, perm: str) -> set[int]:
    """Environments where a membership (not the global role) grants `perm`."""
    if not _active(user):
        return set()
    return {env for env, role in _environment_roles(user).items() if perm in ROLE_PERMISSIONS.get(role, ())}


def can(user, perm: str, environment=None) -> bool:
    """`perm` everywhere (global role), or in `environment` (an Environment or its id)."""
    if not _active(user):
        return False
    if user.has_perm(perm):
        return True
    if environment is None:
        return False
    environment_id = environment if isinstance(environment, int) else environment.pk
    return environment_id in environments_with(user, perm)


def can_somewhere(user, perm: str) -> bool:
    return _active(user) and (user.has_perm(perm) or bool(environments_with(user, perm)))


def restrict(queryset, user, perm: str, *, environment_field: str):
    """The rows of `queryset` in environments where `user` holds `perm`."""
    if not _active(user):
        return queryset.none()
    if user.has_perm(perm):
        return queryset
    environments = environments_with(user, perm)
    if not environments:
        return queryset.none()
    return queryset.filter(**{f"{environment_field}__in": environments})


def may_approve(user, environment) -> bool:
    """The approver role there and, when the environment names an approver
    group, membership of it. Whether the user is the requester is the
    caller's question: nobody approves their own request."""
    if not can(user, APPROVE, environment):
        return False
    if environment.approver_group_id and not user.is_superuser:
        return user.groups.filter(pk=environment.approver_group_id).exists()
    return True
