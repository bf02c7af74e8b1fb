from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    # The log is append-only: bulk edits through the ORM are refused here, and
    # a trigger refuses them for every client (migrations 0002 on PostgreSQL,
    # 0019 on SQLite).
    def update(self, **kwargs):
        raise TypeError("audit events are append-only")

    def delete(self):
        raise TypeError("audit events are append-only")


class AuditEvent(models.Model):
    """One entry of the hash-chained audit log; written only by deployments.audit."""

    seq = models.BigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied so the log still says who acted after the user is deleted; the
    # hash covers this name, not the foreign key that deletion clears.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    # The environment the object belongs to, for filtering and for members of
    # one environment; hashed when set (older events without it verify as before).
    environment = models.CharField(max_length=50, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # The AUDIT_KEYS id whose HMAC `hash` is; blank for the unkeyed events
    # written before the chain was keyed (a legacy prefix, never re-hashed).
    key_id = models.CharField(max_length=32, blank=True, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["action", "-seq"], name="audit_action_seq"),
            models.Index(fields=["actor_name", "-seq"], name="audit_actor_seq"),
            models.Index(fields=["object_type", "object_id", "-seq"], name="audit_object_seq"),
            models.Index(fields=["at"], name="audit_at"),
            models.Index(fields=["environment", "-seq"], name="audit_environment_seq"),
        ]

    def __str__(self):
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit events are append-only")
