"""Celery tasks: thin wrappers that call services with ids, never objects."""

from celery import shared_task

from deployments.services.worker_heartbeats import worker_heartbeat_record


@shared_task(bind=True, name="workers.heartbeat", ignore_result=True)
def heartbeat(self):
    """Sent by beat; whichever worker takes it proves the queue is being served."""
    worker_heartbeat_record(hostname=self.request.hostname or "unknown")
