from django.db import models


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker ran the periodic heartbeat task.

    Lets the dashboard say "no worker is running" instead of leaving
    operations queued without explanation.
    """

    hostname = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()

    def __str__(self):
        return self.hostname
