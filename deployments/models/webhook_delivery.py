from django.db import models


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to an environment's webhook: the exact
    signed body, every attempt's outcome, so a receiver's problem can be
    seen and the event replayed by hand."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    url = models.URLField()
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.event} to {self.url} ({self.status})"
