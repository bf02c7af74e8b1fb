from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from deployments import policy
from deployments.models import Deployment, ModelRepository
from deployments.selectors.audit_log import visible_events
from deployments.selectors.system_status import WorkerStatus, worker_status

RECENT_EVENTS = 8


@dataclass(frozen=True)
class OverviewSummary:
    workers: WorkerStatus
    events_today: int | None
    recent_events: list
    repositories: dict[str, int] | None
    deployments: dict[str, int] | None


def overview_summary(user) -> OverviewSummary:
    can_read_audit = policy.can_somewhere(user, "deployments.view_auditevent")
    events = visible_events(user)
    repositories = None
    if policy.can_somewhere(user, "deployments.view_modelrepository"):
        repositories = ModelRepository.objects.visible_to(user).aggregate(
            total=Count("id"), invalid=Count("id", filter=Q(status=ModelRepository.Status.INVALID))
        )
    deployments = None
    if policy.can_somewhere(user, "deployments.view_deployment"):
        by_status = dict(
            Deployment.objects.visible_to(user)
            .exclude(status=Deployment.Status.DELETED)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        deployments = {"total": sum(by_status.values()), **by_status}
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return OverviewSummary(
        workers=worker_status(),
        events_today=events.filter(at__gte=start_of_day).count() if can_read_audit else None,
        recent_events=list(events.order_by("-seq")[:RECENT_EVENTS]) if can_read_audit else [],
        repositories=repositories,
        deployments=deployments,
    )


@dataclass(frozen=True)
class Fleet:
    deployments: list
    total: int
    pending_approval: int
    in_progress: int
    recent_failures: list
    # Deleted or failed ones, not on the grid: "no deployments yet" would be untrue.
    ended: int = 0

    @property
    def hidden(self) -> int:
        return self.total - len(self.deployments)


# Tiles on the Overview: enough for a team's fleet at a glance; beyond that
# the ones needing attention come first and the list page has the rest.
FLEET_TILES = 120
# Statuses needing attention first, in this order; then everything else.
_ATTENTION_ORDER = ["failed", "unhealthy", "degraded", "deploying", "deleting", "queued", "pending_approval"]


def fleet(user) -> Fleet:
    """Live deployments with their status for the Overview grid: those needing
    attention first, at most FLEET_TILES, and the counts of all of them."""
    live = Deployment.objects.visible_to(user).exclude(status__in=Deployment.TERMINAL)
    by_status = dict(live.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    # One small query per status bucket (each uses the status index) rather
    # than ranking and sorting every live deployment.
    deployments, ordered = (
        [],
        live.select_related("target__environment").order_by("target__environment__position", "name"),
    )
    for status in [*_ATTENTION_ORDER, None]:
        room = FLEET_TILES - len(deployments)
        if room <= 0:
            break
        if status is None:
            deployments += ordered.exclude(status__in=_ATTENTION_ORDER)[:room]
        elif by_status.get(status):
            deployments += ordered.filter(status=status)[:room]
    return Fleet(
        deployments=deployments,
        total=sum(by_status.values()),
        pending_approval=by_status.get(Deployment.Status.PENDING_APPROVAL, 0),
        in_progress=sum(by_status.get(status, 0) for status in Deployment.IN_PROGRESS),
        recent_failures=list(visible_events(user).filter(action="deployment.failed").order_by("-seq")[:5]),
        ended=0 if by_status else Deployment.objects.visible_to(user).filter(status__in=Deployment.TERMINAL).count(),
    )
