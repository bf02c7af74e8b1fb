from django.conf import settings
from django.db import models

from deployments import policy


class MigrationQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(
            self, user, "deployments.view_deployment", environment_field="source__target__environment_id"
        )


class Migration(models.Model):
    """A deployment moved to another target of its environment (an SDK v1
    webservice to an SDK v2 online endpoint): the equivalent deployment is
    created there, compared with the original on golden requests and
    latency side by side, then the original is deleted (through approval
    where the environment asks) once clients call the new address."""

    class Status(models.TextChoices):
        DEPLOYING = "deploying", "Deploying the new deployment"
        DEPLOYED = "deployed", "Deployed; not compared yet"
        COMPARING = "comparing", "Comparing"
        COMPARED = "compared", "Compared"
        CUTTING_OVER = "cutting_over", "Deleting the original"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned"

    ACTIVE = {Status.DEPLOYING, Status.DEPLOYED, Status.COMPARING, Status.COMPARED, Status.CUTTING_OVER}

    source = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="migrations_out")
    destination = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="migrations_in")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DEPLOYING)
    reason = models.TextField(blank=True)
    # Golden requests the comparison sends to both, in the plan's checked shape.
    golden_requests = models.JSONField(default=list, blank=True)
    # {"at", "passed", "golden": [{name, source, destination, same}], "latency": {source, destination}}.
    comparison = models.JSONField(default=dict, blank=True)
    # A cut-over without a passing comparison says who decided so and why.
    forced_because = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MigrationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(status__in=["deploying", "deployed", "comparing", "compared", "cutting_over"]),
                name="one_active_migration_per_source",
            )
        ]

    def __str__(self):
        return f"migration #{self.pk} of {self.source_id} to {self.destination_id}"
