"""The one module that sends Celery tasks. Services call these after their
writes; each message leaves only when the transaction commits (a rolled-back
change sends nothing) and carries ids, never objects.

Tasks are sent by name, so nothing here imports workers.tasks (which imports
the services: the arrow runs one way). Queues come from the task routes in
settings, except for target work, which goes where the target's kind says
(registry.operations_queue): a host-bound kind's to its host's queue.
"""

from celery import current_app
from django.conf import settings
from django.db import transaction

from workers.targets import registry


def _send(task: str, *args, queue: str | None = None, countdown: float | None = None) -> None:
    current_app.send_task(task, args=args, queue=queue, countdown=countdown)


def _after_commit(task: str, *args, queue: str | None = None) -> None:
    transaction.on_commit(lambda: _send(task, *args, queue=queue))


def run_operation(operation) -> None:
    _after_commit("workers.run_operation", operation.pk, queue=registry.operations_queue(operation.deployment.target))


def run_operation_later(*, operation_id: int, target, countdown: float) -> None:
    """A transient failure's retry, from inside the task (no transaction to wait for)."""
    _send("workers.run_operation", operation_id, queue=registry.operations_queue(target), countdown=countdown)


def test_target(target, requested_by: str) -> None:
    _after_commit("workers.test_target", target.pk, requested_by, queue=registry.operations_queue(target))


def adopt_services(target, requested_by: str) -> None:
    _after_commit("workers.adopt_services", target.pk, requested_by, queue=registry.operations_queue(target))


def observe_host(host: str) -> None:
    """The reconciler's observation of a host's host-bound deployments, on that host."""
    _send("workers.observe_host", host, queue=registry.host_queue(host))


def run_load_test(test, *, now: bool = False) -> None:
    """Where the deployment's target does its work: a local endpoint is on its host."""
    where = registry.operations_queue(test.deployment.target)
    if now:
        _send("workers.run_load_test", test.pk, queue=where)
    else:
        _after_commit("workers.run_load_test", test.pk, queue=where)


def run_config_search(search, *, now: bool = False) -> None:
    """On the local target's host: its scratch servers are processes there."""
    where = registry.operations_queue(search.target)
    if now:
        _send("workers.run_config_search", search.pk, queue=where)
    else:
        _after_commit("workers.run_config_search", search.pk, queue=where)


def compare_migration(migration_id: int) -> None:
    _after_commit("workers.compare_migration", migration_id)


def send_email(recipients: list[str], subject: str, body: str) -> None:
    _after_commit("workers.send_email", recipients, subject, body)


def deliver_webhook(delivery_id: int) -> None:
    _after_commit("workers.deliver_webhook", delivery_id)


def deliver_webhook_later(delivery_id: int, countdown: float) -> None:
    _send("workers.deliver_webhook", delivery_id, countdown=countdown)


def worker_queues(host: str | None = None) -> list[str]:
    """Every queue a worker on `host` (default: this one) should consume for
    the whole dashboard to be served: the routed ones and its host's own."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return [*sorted(routed), registry.host_queue(host or settings.WORKER_HOST)]
