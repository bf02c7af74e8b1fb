"""Environments and who holds which role in each: admins only, each change
audited with what it was before (the webhook secret never appears)."""

import re
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from deployments import crypto
from deployments.audit import audit
from deployments.errors import Conflict, DomainError, WrongState
from deployments.integrity import atomic
from deployments.models import Environment, EnvironmentMembership
from deployments.services.permissions import require

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
POLICY_FIELDS = (
    "position",
    "approvals_required",
    "approver_group",
    "approval_lifetime_hours",
    "approve_deletes",
    "approve_traffic",
    "require_rollouts",
    "load_tests",
    "webhook_url",
)


def _public(environment: Environment) -> dict:
    return {
        "name": environment.name,
        "position": environment.position,
        "approvals_required": environment.approvals_required,
        "approver_group": environment.approver_group.name if environment.approver_group else None,
        "approval_lifetime_hours": environment.approval_lifetime_hours,
        "approve_deletes": environment.approve_deletes,
        "approve_traffic": environment.approve_traffic,
        "require_rollouts": environment.require_rollouts,
        "load_tests": environment.load_tests,
        # Only where it goes: many receivers (Slack, Teams) carry their
        # secret in the URL's path, and the log is readable by every viewer.
        "webhook": _origin(environment.webhook_url),
        "has_webhook_secret": bool(environment.webhook_secret_encrypted),
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if url else ""


def _apply(environment: Environment, policy: dict, webhook_secret: str | None) -> None:
    unknown = set(policy) - set(POLICY_FIELDS)
    if unknown:
        raise DomainError(f"Unknown settings: {', '.join(sorted(unknown))}.", path=sorted(unknown)[0])
    for field in ("position", "approvals_required", "approval_lifetime_hours"):
        if field in policy:
            value = policy[field]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
                raise DomainError(f"{field} is a whole number from 0.", path=field)
    if policy.get("approvals_required", environment.approvals_required) > 10:
        raise DomainError("At most 10 approvals can be required.", path="approvals_required")
    if policy.get("approval_lifetime_hours", environment.approval_lifetime_hours) < 1:
        raise DomainError("Approvals must live at least an hour.", path="approval_lifetime_hours")
    group = policy.get("approver_group", environment.approver_group)
    if isinstance(group, str):
        group = Group.objects.filter(name=group).first() if group else None
        if policy["approver_group"] and group is None:
            raise DomainError(f"No group named {policy['approver_group']}.", path="approver_group")
    load_tests = policy.get("load_tests", environment.load_tests)
    if load_tests not in Environment.LoadTests.values:
        choices = ", ".join(Environment.LoadTests.values)
        raise DomainError(f"load_tests is one of {choices}.", path="load_tests")
    environment.load_tests = load_tests
    url = (policy.get("webhook_url", environment.webhook_url) or "").strip()
    if url and not url.startswith(("https://", "http://")):
        raise DomainError("The webhook URL starts with https:// (or http:// on a private network).", path="webhook_url")
    for field in (
        "position",
        "approvals_required",
        "approval_lifetime_hours",
        "approve_deletes",
        "approve_traffic",
        "require_rollouts",
    ):
        if field in policy:
            setattr(environment, field, policy[field])
    environment.approver_group = group
    environment.webhook_url = url
    if webhook_secret:
        environment.webhook_secret_encrypted = crypto.encrypt(webhook_secret)


@atomic
def environment_create(*, actor, name: str, policy: dict | None = None, webhook_secret: str = "") -> Environment:
    require(actor, "deployments.add_environment", "Creating an environment", role="admin")
    name = (name or "").strip()
    if not _NAME.match(name):
        raise DomainError("Environment names are lower-case letters, digits and '-', e.g. prod-eu.", path="name")
    if Environment.objects.filter(name=name).exists():
        raise Conflict(f"An environment named {name} exists already.", path="name")
    environment = Environment(name=name)
    policy = policy or {}
    if "load_tests" not in policy and policy.get("approvals_required"):
        # Where changes need four eyes, so does real load on its servers.
        environment.load_tests = Environment.LoadTests.APPROVAL
    _apply(environment, policy, webhook_secret)
    environment.save()
    audit(action="environment.created", actor=actor, obj=environment, after=_public(environment))
    return environment


@atomic
def environment_update(*, actor, environment: Environment, policy: dict, webhook_secret: str = "") -> Environment:
    require(actor, "deployments.change_environment", "Changing an environment", role="admin")
    locked = Environment.objects.select_for_update().get(pk=environment.pk)
    before = _public(locked)
    _apply(locked, policy, webhook_secret)
    locked.save()
    after = _public(locked)
    audit(
        action="environment.changed",
        actor=actor,
        obj=locked,
        before=before,
        after=after,
        details={"webhook_secret_changed": bool(webhook_secret)},
    )
    return locked


@atomic
def membership_set(*, actor, environment: Environment, username: str, role: str) -> EnvironmentMembership:
    require(actor, "deployments.add_environmentmembership", "Granting roles", role="admin")
    if role not in EnvironmentMembership.Role.values:
        raise DomainError(f"role is one of {', '.join(EnvironmentMembership.Role.values)}.", path="role")
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise DomainError(f"No user named {username!r}.", path="username")
    existing = EnvironmentMembership.objects.select_for_update().filter(user=user, environment=environment).first()
    before = {"role": existing.role} if existing else None
    membership, _ = EnvironmentMembership.objects.update_or_create(
        user=user, environment=environment, defaults={"role": role}
    )
    audit(
        action="membership.granted",
        actor=actor,
        obj=environment,
        before=before,
        after={"user": user.get_username(), "role": role},
    )
    return membership


@atomic
def membership_remove(*, actor, membership: EnvironmentMembership) -> None:
    require(actor, "deployments.delete_environmentmembership", "Removing roles", role="admin")
    locked = EnvironmentMembership.objects.select_for_update().filter(pk=membership.pk).first()
    if locked is None:
        raise WrongState("This role was already removed.")
    audit(
        action="membership.removed",
        actor=actor,
        obj=locked.environment,
        before={"user": locked.user.get_username(), "role": locked.role},
    )
    locked.delete()
