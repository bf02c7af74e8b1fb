from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from deployments.models import AuditEvent, Deployment, ModelRepository
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
    can_read_audit = user.has_perm("deployments.view_auditevent")
    repositories = None
    if user.has_perm("deployments.view_modelrepository"):
        repositories = ModelRepository.objects.visible_to(user).aggregate(
            total=Count("id"), invalid=Count("id", filter=Q(status=ModelRepository.Status.INVALID))
        )
    deployments = None
    if user.has_perm("deployments.view_deployment"):
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
        events_today=AuditEvent.objects.filter(at__gte=start_of_day).count() if can_read_audit else None,
        recent_events=list(AuditEvent.objects.order_by("-seq")[:RECENT_EVENTS]) if can_read_audit else [],
        repositories=repositories,
        deployments=deployments,
    )


@dataclass(frozen=True)
class Fleet:
    deployments: list
    pending_approval: int
    in_progress: int
    recent_failures: list


def fleet(user) -> Fleet:
    """Every live deployment with its status, for the Overview grid."""
    deployments = list(
        Deployment.objects.visible_to(user)
        .exclude(status=Deployment.Status.DELETED)
        .select_related("target__environment")
        .order_by("target__environment__position", "name")
    )
    return Fleet(
        deployments=deployments,
        pending_approval=sum(d.status == Deployment.Status.PENDING_APPROVAL for d in deployments),
        in_progress=sum(d.in_progress for d in deployments),
        recent_failures=list(AuditEvent.objects.filter(action="deployment.failed").order_by("-seq")[:5])
        if user.has_perm("deployments.view_auditevent")
        else [],
    )
