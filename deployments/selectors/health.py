from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.http import urlencode

from deployments.health.poller import availability_of, latency_figures, transitions
from deployments.models import Deployment

_SHOWN = {"healthy", "degraded", "unhealthy", "failed"}

# The deployment page's time ranges: (label, hours, tick every, tick label format).
RANGES = {
    "1h": ("1 hour", 1, timedelta(minutes=10), "H:i"),
    "24h": ("24 hours", 24, timedelta(hours=3), "H:i"),
    "7d": ("7 days", 24 * 7, timedelta(days=1), "D j M"),
}
DEFAULT_RANGE = "24h"
# Percent of the strip at either end where no axis label is put.
EDGE = 3


def page_query(range_key: str, history_kind: str = "") -> str:
    """A deployment page's query string: its time range and History filter."""
    return urlencode({"range": range_key, **({"history": history_kind} if history_kind else {})})


def range_key(raw: str) -> str:
    """The range a query string asks for; anything else is the default."""
    return raw if raw in RANGES else DEFAULT_RANGE


@dataclass(frozen=True)
class Segment:
    status: str
    # Where it starts and how wide it is, in percent of the window.
    offset: float
    percent: float
    since: object


@dataclass(frozen=True)
class Tick:
    offset: float  # percent of the window
    at: datetime
    format: str


@dataclass(frozen=True)
class HealthView:
    availability: float | None
    latency: dict
    timeline: list[Segment]
    ticks: list[Tick]
    range: str

    @property
    def range_label(self) -> str:
        return RANGES[self.range][0]

    @property
    def statuses(self) -> list[str]:
        """The statuses the strip shows, for its legend."""
        return sorted({segment.status for segment in self.timeline})


def timeline(previous: str | None, samples: list, *, start, now) -> list[Segment]:
    """The window's transitions as status segments, widths in percent of it."""
    points = ([(start, previous)] if previous else []) + samples
    if not points:
        return []
    window = (now - start).total_seconds()
    segments = []
    for (at, status), (until, _) in zip(points, [*points[1:], (now, None)], strict=True):
        width = (until - at).total_seconds() / window * 100
        offset = (at - start).total_seconds() / window * 100
        segments.append(Segment(status if status in _SHOWN else "other", round(offset, 2), round(width, 2), at))
    return segments


def ticks(key: str, *, now=None) -> list[Tick]:
    """Axis marks under the strip at round local times (every 10 minutes,
    3 hours or day), placed in percent of the window."""
    _, hours, step, fmt = RANGES[key]
    now = timezone.localtime(now or timezone.now())
    start = now - timedelta(hours=hours)
    if step >= timedelta(days=1):
        mark = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    else:
        unit = int(step.total_seconds() // 60)
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        minutes = ((start - midnight).total_seconds() // 60 // unit + 1) * unit
        mark = midnight + timedelta(minutes=minutes)
    window = (now - start).total_seconds()
    marks = []
    while mark < now:
        offset = (mark - start).total_seconds() / window * 100
        # A label centred this close to an end would be cut off by it.
        if EDGE <= offset <= 100 - EDGE:
            marks.append(Tick(round(offset, 2), mark, fmt))
        # Through local midnight arithmetic: a day stays a calendar day across DST.
        mark = timezone.localtime(mark + step)
    return marks


def health_view(deployment: Deployment, key: str = DEFAULT_RANGE) -> HealthView:
    """Availability and the status strip over the range, from one read of its transitions."""
    now = timezone.now()
    start = now - timedelta(hours=RANGES[key][1])
    previous, samples = transitions(deployment, start)
    return HealthView(
        availability_of(previous, samples, since=start, now=now),
        latency_figures(deployment),
        timeline(previous, samples, start=start, now=now),
        ticks(key, now=now),
        key,
    )
