from django.db import models


class Environment(models.Model):
    """dev / staging / prod: where a target belongs, and what its deploys need."""

    name = models.SlugField(max_length=50, unique=True)
    # Position in lists (dev before prod), not a priority.
    position = models.PositiveSmallIntegerField(default=0)
    approvals_required = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name
