from django.conf import settings
from django.db import models

from deployments import policy


class DeploymentQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(self, user, "deployments.view_deployment", environment_field="target__environment_id")


class Deployment(models.Model):
    """A repository served on a target: the desired spec and what was observed."""

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        QUEUED = "queued", "Queued"
        DEPLOYING = "deploying", "Deploying"
        HEALTHY = "healthy", "Healthy"
        DEGRADED = "degraded", "Degraded"
        UNHEALTHY = "unhealthy", "Unhealthy"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"
        DELETED = "deleted", "Deleted"
        REJECTED = "rejected", "Rejected"

    # Statuses during which an operation is under way: the page keeps polling.
    IN_PROGRESS = {Status.QUEUED, Status.DEPLOYING, Status.DELETING}
    # Nothing will change any more.
    TERMINAL = {Status.DELETED, Status.REJECTED}
    # Observed states the reconciler keeps checking.
    RUNNING = {Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY}

    class Mode(models.TextChoices):
        TRITON = "triton", "Triton (direct /v2 API)"
        ENTRY_SCRIPT = "entry_script", "Entry script (/score in front of Triton)"

    class Desired(models.TextChoices):
        PRESENT = "present"
        ABSENT = "absent"

    name = models.SlugField(max_length=63)
    # Deleting a repository is refused while a live deployment uses it; once
    # only deleted deployments refer to it, they keep its name and digest.
    repository = models.ForeignKey(
        "deployments.ModelRepository", null=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    repository_name = models.CharField(max_length=100)
    repository_revision = models.PositiveIntegerField(null=True, blank=True)
    repository_digest = models.CharField(max_length=64)
    target = models.ForeignKey("deployments.Target", on_delete=models.PROTECT, related_name="deployments")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.TRITON)
    entry_script = models.TextField(blank=True)
    pip_packages = models.JSONField(default=list, blank=True)
    worker_count = models.PositiveSmallIntegerField(default=1)
    resources = models.JSONField(default=dict, blank=True)
    auth_enabled = models.BooleanField(default=True)
    # SHA-256 of the spec (repository digest, target, mode, script, packages,
    # workers, resources, auth): what an approval binds and a redeploy compares.
    spec_digest = models.CharField(max_length=64)
    desired_state = models.CharField(max_length=8, choices=Desired.choices, default=Desired.PRESENT)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True)
    scoring_uri = models.CharField(max_length=500, blank=True)
    # The address clients called before it changed: its page says so until dismissed.
    scoring_uri_before = models.CharField(max_length=500, blank=True)
    # What the target's control plane says (written by the reconciler):
    # {"exists", "provisioning", "detail", "spec_digest", "traffic", "deployments", "error", "at"}.
    control_plane = models.JSONField(default=dict, blank=True)
    # What probes of Triton found (written by the health poller, or by the
    # reconciler for kinds with no address to probe from here):
    # {"live", "ready", "models", "detail", "deployments", "at"}.
    data_plane = models.JSONField(default=dict, blank=True)
    # Both combined for pages and the API (deployments/health/verdict.py):
    # {"live", "ready", "checked_at", "models": [...], "detail", "traffic", "deployments"}.
    observed = models.JSONField(default=dict, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    # Restarts in a row (each soon after the one before), and when the next
    # one may happen: a server that keeps dying is restarted with a growing
    # delay, then left for a person (LOCAL_RESTART_LIMIT).
    restarts_in_a_row = models.PositiveSmallIntegerField(default=0)
    restart_not_before = models.DateTimeField(null=True, blank=True)
    # When the health poller last reached a verdict, and its recent probe
    # latencies (ms, newest last) for the rolling p50/p95.
    checked_at = models.DateTimeField(null=True, blank=True)
    probe_latencies = models.JSONField(default=list, blank=True)
    # The previous /metrics scrape's raw counters, to turn the next into rates.
    metrics_last = models.JSONField(default=dict, blank=True)
    # The endpoint key the probes send (Fernet-encrypted; never rendered).
    key_encrypted = models.TextField(blank=True)
    # The endpoint's other key, shown on request beside the primary one (encrypted too).
    secondary_key_encrypted = models.TextField(blank=True)
    # Found at the target (an existing Azure webservice) rather than deployed
    # from here: watched and deletable, but with no recorded repository to redeploy.
    adopted = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            # One live deployment of a name per target; deleted and rejected
            # ones keep their history without holding the name.
            models.UniqueConstraint(
                fields=["target", "name"],
                condition=~models.Q(status__in=["deleted", "rejected"]),
                name="deployment_name_unique_per_target",
            )
        ]
        indexes = [
            models.Index(fields=["status"], name="deployment_status"),
            # The lists' order: newest change first.
            models.Index(fields=["-updated_at", "-id"], name="deployment_updated"),
        ]
        permissions = [("use_console", "Can send test inference requests to a deployment")]

    def __str__(self):
        return self.name

    @property
    def in_progress(self) -> bool:
        return self.status in self.IN_PROGRESS
