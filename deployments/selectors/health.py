from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from deployments.health.poller import availability, latency_figures
from deployments.models import Deployment

_SHOWN = {"healthy", "degraded", "unhealthy", "failed"}


@dataclass(frozen=True)
class Segment:
    status: str
    # Where it starts and how wide it is, in percent of the window.
    offset: float
    percent: float
    since: object


@dataclass(frozen=True)
class HealthView:
    availability: float | None
    latency: dict
    timeline: list[Segment]


def timeline(deployment: Deployment, hours: int = 24) -> list[Segment]:
    """The last `hours` as status segments, widths in percent of the window."""
    now = timezone.now()
    start = now - timedelta(hours=hours)
    samples = list(deployment.health_samples.filter(at__gte=start).order_by("at").values_list("at", "status"))
    before = deployment.health_samples.filter(at__lt=start).order_by("-at").values_list("status", flat=True).first()
    points = ([(start, before)] if before else []) + samples
    if not points:
        return []
    window = (now - start).total_seconds()
    segments = []
    for (at, status), (until, _) in zip(points, [*points[1:], (now, None)], strict=True):
        width = (until - at).total_seconds() / window * 100
        offset = (at - start).total_seconds() / window * 100
        segments.append(Segment(status if status in _SHOWN else "other", round(offset, 2), round(width, 2), at))
    return segments


def health_view(deployment: Deployment) -> HealthView:
    return HealthView(availability(deployment), latency_figures(deployment), timeline(deployment))
