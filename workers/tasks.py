"""Celery tasks: thin wrappers that call services with ids, never objects.

The services are imported inside each task: the services send tasks by name
(deployments/queue.py) and never import this module, so the arrow runs one
way, from here to them.
"""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(bind=True, name="workers.heartbeat", ignore_result=True)
def heartbeat(self):
    """Sent by beat; whichever worker takes it proves the queue is being served."""
    from deployments.services.worker_heartbeats import worker_heartbeat_record

    worker_heartbeat_record(hostname=self.request.hostname or "unknown")


@worker_ready.connect
def _announce_worker(sender, **kwargs):
    from deployments.services.worker_heartbeats import worker_heartbeat_record

    # Say so at once rather than a heartbeat interval after start-up.
    worker_heartbeat_record(hostname=sender.hostname)


@shared_task(bind=True, name="workers.run_operation", ignore_result=True)
def run_operation(self, operation_id: int):
    """Run one Operation. State is in its row: a second delivery finds it
    claimed and does nothing; a transient failure re-queues it with a delay."""
    from deployments.services.operations import operation_execute

    operation_execute(operation_id=operation_id, task_id=self.request.id or "")


@shared_task(name="workers.reconcile", ignore_result=True)
def reconcile_deployments():
    from deployments.services.operations import reconcile
    from deployments.single_run import single_run

    with single_run("workers.reconcile") as acquired:
        if acquired:
            return reconcile()
    return None


@shared_task(name="workers.observe_host", ignore_result=True)
def observe_host(host: str):
    """The reconciler's look at one host's local servers, on that host."""
    from deployments.loadlab.search import scratch_cleanup
    from deployments.rollouts.driver import advance
    from deployments.services.operations import observe
    from deployments.single_run import single_run

    with single_run(f"workers.observe_host.{host}") as acquired:
        if acquired:
            return {**observe(host=host), **advance(host=host), "scratch_removed": scratch_cleanup(host=host)}
    return None


@shared_task(name="workers.compare_migration", ignore_result=True)
def compare_migration(migration_id: int):
    """Golden requests and timed calls to both sides of a migration."""
    from deployments.services.migrations import migration_compare_run

    migration_compare_run(migration_id)


@shared_task(name="workers.run_load_test", ignore_result=True)
def run_load_test(test_id: int):
    """One load test's sweep; the row says what to do and takes every result."""
    from deployments.loadlab.job import run

    run(test_id)


@shared_task(name="workers.run_config_search", ignore_result=True)
def run_config_search(search_id: int):
    """A config search: scratch deployments, a sweep on each, always cleaned up."""
    from deployments.loadlab.search import run

    run(search_id)


@shared_task(name="workers.test_target", ignore_result=True)
def test_target(target_id: int, requested_by: str):
    from deployments.services.targets import target_test_run

    target_test_run(target_id=target_id, requested_by=requested_by)


@shared_task(name="workers.adopt_services", ignore_result=True)
def adopt_services(target_id: int, requested_by: str):
    from deployments.services.targets import target_adopt_run

    target_adopt_run(target_id=target_id, requested_by=requested_by)


@shared_task(name="workers.health_round", ignore_result=True)
def poll_health():
    """A round that overlaps the previous one is skipped, not stacked."""
    from deployments.health.poller import health_round
    from deployments.single_run import single_run

    with single_run("workers.health_round") as acquired:
        if acquired:
            report = health_round()
            return {"checked": report.checked, "changed": report.changed, "seconds": report.seconds}
    return None


@shared_task(name="workers.scrape_metrics", ignore_result=True)
def scrape_metrics():
    from deployments.health.metrics import scrape_all
    from deployments.single_run import single_run

    with single_run("workers.scrape_metrics") as acquired:
        if acquired:
            return scrape_all()
    return None


@shared_task(name="workers.anchor_audit", ignore_result=True)
def anchor_audit():
    """Write the audit chain's head down outside the database (deployments/audit/anchors.py)."""
    from deployments.audit.anchors import anchor_chain
    from deployments.single_run import single_run

    with single_run("workers.anchor_audit") as acquired:
        if acquired:
            line = anchor_chain()
            return line and {"seq": line["seq"]}
    return None


@shared_task(name="workers.send_email", ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_email(recipients: list[str], subject: str, body: str):
    from django.core.mail import send_mail

    send_mail(subject, body, None, recipients)


@shared_task(name="workers.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int):
    """Each attempt is recorded on the delivery; a failed one is tried again
    after the next of WEBHOOK_RETRY_DELAYS (all below the visibility timeout)."""
    from deployments import queue
    from deployments.services.webhooks import webhook_deliver

    retry_in = webhook_deliver(delivery_id=delivery_id)
    if retry_in is not None:
        queue.deliver_webhook_later(delivery_id, retry_in)
