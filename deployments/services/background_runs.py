"""What load tests and config searches share as Celery jobs over their rows
(models.load_test.BackgroundRun): the claim that makes a second delivery
harmless, and the reconciler's part when a worker dies or a message is lost."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.audit import audit
from deployments.models.load_test import RunStatus


def claim(model, run_id: int, *, action: str, details) -> bool:
    """QUEUED -> RUNNING, audited, or False (claimed already, or cancelled
    before it started). `details(run)` says what the audit event records."""
    now = timezone.now()
    with transaction.atomic():
        claimed = model.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        if claimed:
            run = model.objects.get(pk=run_id)
            audit(action=action, obj=run, details=details(run))
    return bool(claimed)


def settle(model, *, now, resend, kept: str) -> dict[str, int]:
    """Fail each running row that stopped beating for LOADTEST_STALE_AFTER
    (`kept`: what of it remains, for its error); send each queued one whose
    message may be lost again (`resend(row)`)."""
    stale = now - timedelta(seconds=settings.LOADTEST_STALE_AFTER)
    figures = {"lost": 0, "resent": 0}
    for run in model.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=stale):
        figures["lost"] += _fail_lost(model, run.pk, stale, kept)
    waiting = now - timedelta(seconds=settings.OPERATION_RESEND_AFTER)
    for run in model.objects.filter(status=RunStatus.QUEUED, queued_at__lt=waiting):
        if model.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(queued_at=now):
            resend(run)
            figures["resent"] += 1
    return figures


def _fail_lost(model, run_id: int, stale, kept: str) -> bool:
    with transaction.atomic():
        run = model.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING or run.heartbeat_at >= stale:
            return False
        run.status, run.ended_at = RunStatus.FAILED, timezone.now()
        run.error = f"its worker stopped (no heartbeat since {run.heartbeat_at:%H:%M:%S} UTC); {kept}"
        run.save(update_fields=["status", "ended_at", "error"])
        audit(action=f"{model._meta.model_name}.failed", obj=run, details={"reason": run.error})
    return True
