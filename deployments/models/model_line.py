from django.conf import settings
from django.db import models

from deployments import policy


class ModelLineQuerySet(models.QuerySet):
    def visible_to(self, user):
        # Shared by the team like repositories; where revisions run is
        # filtered per environment by the selectors.
        return self if policy.can_somewhere(user, "deployments.view_modelrepository") else self.none()


class ModelLine(models.Model):
    """A repository name: every upload under it is its next numbered revision."""

    name = models.CharField(max_length=100, unique=True)
    # Numbers are never handed out twice, even once a revision is deleted:
    # "bidaf r2" always meant one content.
    last_revision = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ModelLineQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
