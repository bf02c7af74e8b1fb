from django.db import models


class MetricPoint(models.Model):
    """One minute of one series scraped from a deployment's Triton /metrics:
    a per-model figure (model set) or a server-wide one (model empty)."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="metric_points")
    minute = models.DateTimeField()
    name = models.CharField(max_length=40)
    model = models.CharField(max_length=200, blank=True)
    value = models.FloatField()

    class Meta:
        ordering = ["minute"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "name", "model", "minute"], name="metric_point_unique")
        ]
        indexes = [models.Index(fields=["deployment", "name", "minute"], name="metric_point_series")]

    def __str__(self):
        return f"{self.deployment_id} {self.name}[{self.model}] {self.minute:%H:%M} = {self.value}"
