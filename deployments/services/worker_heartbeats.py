from django.utils import timezone

from deployments.models import WorkerHeartbeat


def worker_heartbeat_record(*, hostname: str) -> None:
    # Liveness bookkeeping, not a change anyone made: deliberately not audited.
    WorkerHeartbeat.objects.update_or_create(hostname=hostname[:255], defaults={"last_seen": timezone.now()})
