"""Celery tasks: thin wrappers that call services with ids, never objects."""

from celery import shared_task
from celery.signals import worker_ready

from deployments.services.worker_heartbeats import worker_heartbeat_record


@shared_task(bind=True, name="workers.heartbeat", ignore_result=True)
def heartbeat(self):
    """Sent by beat; whichever worker takes it proves the queue is being served."""
    worker_heartbeat_record(hostname=self.request.hostname or "unknown")


@worker_ready.connect
def _announce_worker(sender, **kwargs):
    # Say so at once rather than a heartbeat interval after start-up.
    worker_heartbeat_record(hostname=sender.hostname)
