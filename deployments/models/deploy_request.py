from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments import policy


class DeployRequestQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(self, user, "deployments.view_deployment", environment_field="environment_id")


class DeployRequest(models.Model):
    """A change that waits for approvals: bound to the exact spec digest it
    would deploy (or, for deletes and traffic changes, the one running)."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "Deploy"
        DELETE = "delete", "Delete"
        TRAFFIC = "traffic", "Traffic change"
        # Binds a rollout's plan digest (spec + steps + gates + golden requests).
        ROLLOUT = "rollout", "Rollout"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        SUPERSEDED = "superseded", "Superseded by a newer request"
        EXPIRED = "expired", "Expired"

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="requests")
    # Copied at request time: the policy that applies is the one asked under.
    environment = models.ForeignKey("deployments.Environment", on_delete=models.PROTECT, related_name="requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    spec_digest = models.CharField(max_length=64)
    # The spec it would deploy ({repository_id, repository_name,
    # repository_digest, mode, entry_script, ...}) and what ran when it was
    # asked, for the page's diff; traffic changes carry their split in params.
    spec = models.JSONField(default=dict, blank=True)
    current = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    approvals_required = models.PositiveSmallIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="deploy_requests"
    )
    requested_by_name = models.CharField(max_length=150)
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The operation its last approval released.
    operation = models.OneToOneField(
        "deployments.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="request"
    )

    objects = DeployRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment"], condition=models.Q(status="pending"), name="one_pending_request_per_deployment"
            ),
            # Lets Approval reference (request, requester) as a pair (see migration 0011).
            models.UniqueConstraint(fields=["id", "requested_by"], name="deploy_request_id_requester"),
        ]
        indexes = [
            models.Index(fields=["status", "-requested_at"], name="request_status_time"),
            models.Index(fields=["requested_by", "-requested_at"], name="request_requester_time"),
        ]
        permissions = [("approve_deployrequest", "Can approve or reject deploy requests")]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.deployment} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.PENDING and self.expires_at <= timezone.now()


class Approval(models.Model):
    """One person's decision on a request. The requester's id is copied here
    so the database itself refuses self-approval (a check constraint), and on
    PostgreSQL a foreign key on (request, requester) keeps that copy true."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(DeployRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    approver_name = models.CharField(max_length=150)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    # The digest decided on: always the request's, recorded so the log of
    # approvals says on its own what was approved.
    spec_digest = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(approver=models.F("requester")), name="approval_not_by_requester"
            ),
            models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver"),
        ]

    def __str__(self):
        return f"{self.approver_name} {self.get_decision_display().lower()} request #{self.request_id}"
