from django.db import models


class HealthSample(models.Model):
    """One observation of a deployment, kept only when its status, reason or
    model readiness changed: a timeline of transitions, not of polls."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="health_samples")
    at = models.DateTimeField()
    status = models.CharField(max_length=20)
    reason = models.TextField(blank=True)
    live = models.BooleanField(default=False)
    ready = models.BooleanField(default=False)
    model_states = models.JSONField(default=list, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["deployment", "-at"], name="health_sample_deployment_at")]

    def __str__(self):
        return f"{self.deployment_id} {self.status} at {self.at:%Y-%m-%d %H:%M:%S}"
