import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Operation(models.Model):
    """One attempt to change a deployment at its target. State lives here,
    never only in Celery: a task claims the row, records each step, and the
    reconciler re-drives rows whose worker died."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "Deploy"
        DELETE = "delete", "Delete"
        TRAFFIC = "traffic", "Traffic change"
        KEY = "key", "Key regeneration"
        # One deployment of the endpoint removed (a rollout's baseline or candidate).
        RETIRE = "retire", "Removal of one endpoint deployment"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    ACTIVE = {Status.QUEUED, Status.RUNNING}
    FINISHED = {Status.SUCCEEDED, Status.FAILED, Status.NEEDS_ATTENTION}

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Handed to the target, so a re-driven attempt finds what an earlier one created.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    spec_digest = models.CharField(max_length=64)
    reason = models.CharField(max_length=200, blank=True, help_text="why it was started, e.g. a restart")
    # Kind-specific input, e.g. {"traffic": {"s1a2b3": 90, "s4c5d6": 10}};
    # {"rollout": id} marks the operations a rollout runs (its candidate's
    # deploy, its traffic steps, a retire): their failure fails the rollout,
    # not the deployment, which keeps serving its baseline.
    params = models.JSONField(default=dict, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    # Claims so far: the fencing token of the attempt that owns the row.
    attempts = models.PositiveSmallIntegerField(default=0)
    # Claims that found the target still carrying out the change and only
    # looked again later: not counted against OPERATION_MAX_ATTEMPTS.
    waits = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one unfinished operation per deployment.
            models.UniqueConstraint(
                fields=["deployment"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_operation_per_deployment",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="operation_status_heartbeat")]

    def __str__(self):
        return f"{self.kind} #{self.pk} of {self.deployment_id}"

    @property
    def on_step_for(self) -> float | None:
        """Seconds the running attempt has been on its last recorded step (a long upload, say)."""
        if self.status != self.Status.RUNNING or not self.steps:
            return None
        return (timezone.now() - datetime.fromisoformat(self.steps[-1]["at"])).total_seconds()

    @property
    def heartbeat_age(self) -> float | None:
        if self.status != self.Status.RUNNING or self.heartbeat_at is None:
            return None
        return (timezone.now() - self.heartbeat_at).total_seconds()

    @property
    def tries(self) -> int:
        """Attempts that tried something (a worker lost, an error), waits aside."""
        return self.attempts - self.waits
