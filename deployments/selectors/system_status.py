"""Is the dashboard itself working: database, broker, workers."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from dashboard.celery import app as celery_app
from deployments.models import WorkerHeartbeat


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; say which
        return f"error: {type(exc).__name__}"
    return "ok"


def broker_status() -> str:
    try:
        with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            # Fail fast: a health probe must answer within a load balancer's timeout.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:  # kombu wraps transport errors in many types
        return f"error: {type(exc).__name__}"
    return "ok"


@dataclass(frozen=True)
class WorkerStatus:
    online: int
    last_seen: datetime | None

    @property
    def ok(self) -> bool:
        return self.online > 0


def worker_status() -> WorkerStatus:
    # A worker that missed two heartbeats in a row is counted as gone.
    cutoff = timezone.now() - 2 * settings.WORKER_HEARTBEAT_INTERVAL
    beats = list(WorkerHeartbeat.objects.values_list("last_seen", flat=True))
    return WorkerStatus(
        online=sum(1 for seen in beats if seen >= cutoff),
        last_seen=max(beats, default=None),
    )
