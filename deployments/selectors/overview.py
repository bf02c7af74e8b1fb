from dataclasses import dataclass

from django.db.models import Count, Q

from deployments import policy
from deployments.models import ModelRepository
from deployments.selectors.audit_log import visible_events
from deployments.selectors.system_status import WorkerStatus, worker_status

RECENT_EVENTS = 8


@dataclass(frozen=True)
class OverviewSummary:
    workers: WorkerStatus
    can_read_audit: bool
    recent_events: list
    repositories: dict[str, int] | None


def overview_summary(user) -> OverviewSummary:
    """The Overview's cards other than the fleet's: workers, repositories
    and the latest audit events."""
    can_read_audit = policy.can_somewhere(user, "deployments.view_auditevent")
    repositories = None
    if policy.can_somewhere(user, "deployments.view_modelrepository"):
        repositories = ModelRepository.objects.visible_to(user).aggregate(
            total=Count("id"), invalid=Count("id", filter=Q(status=ModelRepository.Status.INVALID))
        )
    return OverviewSummary(
        workers=worker_status(),
        can_read_audit=can_read_audit,
        recent_events=list(visible_events(user).order_by("-seq")[:RECENT_EVENTS]) if can_read_audit else [],
        repositories=repositories,
    )
