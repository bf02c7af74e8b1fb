from django.conf import settings
from django.db import models

from deployments import policy


class EnvironmentQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(self, user, "deployments.view_environment", environment_field="pk")


class Environment(models.Model):
    """dev / staging / prod: where a target belongs, and what changes there need."""

    name = models.SlugField(max_length=50, unique=True)
    # Position in lists (dev before prod), not a priority.
    position = models.PositiveSmallIntegerField(default=0)
    # How many distinct people other than the requester must approve; 0 = none.
    approvals_required = models.PositiveSmallIntegerField(default=0)
    # When set, only its members may approve here (on top of the approver role).
    approver_group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A request and the approvals it gathered lapse after this many hours.
    approval_lifetime_hours = models.PositiveIntegerField(default=72)
    approve_deletes = models.BooleanField(default=True, help_text="deletes need approval too")
    approve_traffic = models.BooleanField(default=True, help_text="traffic changes need approval too")
    # A changed spec goes on here only as a rollout (steps gated on Triton's
    # signals), never as a one-shot redeploy.
    require_rollouts = models.BooleanField(default=False, help_text="spec changes go out only as rollouts")

    # Load tests put real load on real servers: off here, allowed, or only
    # once somebody who may approve here has said yes.
    class LoadTests(models.TextChoices):
        OFF = "off", "Off"
        ALLOWED = "allowed", "Allowed"
        APPROVAL = "approval", "Need approval"

    load_tests = models.CharField(max_length=8, choices=LoadTests.choices, default=LoadTests.ALLOWED)
    # Notifications: a JSON POST per event, signed with HMAC-SHA256 under the
    # (Fernet-encrypted) secret.
    webhook_url = models.URLField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    def needs_approval(self, kind: str) -> bool:
        """Whether a change of `kind` (deploy, delete, traffic) waits for approvals here."""
        if not self.approvals_required:
            return False
        return {"deploy": True, "rollout": True, "delete": self.approve_deletes, "traffic": self.approve_traffic}[kind]


class EnvironmentMembership(models.Model):
    """A role in one environment, on top of (or instead of) the user's global
    role: someone may deploy to dev while only viewing prod."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        DEPLOYER = "deployer", "Deployer"
        APPROVER = "approver", "Approver"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    # Set from the identity provider's groups at each sign-in (and removed
    # there); roles an admin grants by hand are not touched by sign-in.
    sso_managed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__position", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_environment")]

    def __str__(self):
        return f"{self.user} is {self.role} in {self.environment}"
