"""A real Celery worker consuming from the real Redis."""

import pytest

from deployments.models import WorkerHeartbeat
from tests import processes
from workers.tasks import heartbeat

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _started(worker):
    # A worker announces itself once it is ready to consume.
    return processes.wait_for(WorkerHeartbeat.objects.first, within=60, what="worker ready", process=worker)


def test_a_real_worker_runs_a_task_sent_through_redis(celery_worker):
    announced = _started(celery_worker)
    assert announced.hostname.startswith("test-worker@")
    WorkerHeartbeat.objects.all().delete()
    heartbeat.delay()
    beat = processes.wait_for(
        WorkerHeartbeat.objects.first, within=60, what="heartbeat task run by the worker", process=celery_worker
    )
    assert beat.hostname == announced.hostname


def test_the_health_endpoint_counts_the_worker(client, celery_worker):
    _started(celery_worker)
    assert client.get("/api/v1/health").json()["workers"]["online"] == 1
