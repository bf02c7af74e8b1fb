"""The Overview tiles' figures: request rate, error rate and p95 latency of
each deployment over the last hour in five-minute slots, from the minute
points the scrape keeps (deployments/health/metrics.py), read for all the
tiles in one query.

A figure the deployment's kind does not give says why (counter_source.
figures_given); one it gives but has no recent reading of says that; it is
never shown as a zero.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max, Sum
from django.db.models.functions import ExtractDay, ExtractHour, ExtractMinute, Floor
from django.utils import timezone

from deployments.health import counter_source
from deployments.models import MetricPoint

WINDOW = timedelta(hours=1)
# The newest minute a figure is read from: older than this, the tile says
# there is no recent reading rather than showing a stale value as current.
FRESH = timedelta(minutes=3)
SLOT_MINUTES = 5
SPARK_WIDTH, SPARK_HEIGHT = 100, 24
_NAMES = ("requests_per_s", "failures_per_s", "p95_ms")


@dataclass(frozen=True)
class Figure:
    label: str
    unit: str
    value: float | None
    # SVG polyline point lists (one per run of consecutive slots), in a
    # SPARK_WIDTH x SPARK_HEIGHT box whose x axis is the last hour.
    lines: list[str]
    # Why there is no value: the kind does not give it (given False), or
    # there is no recent reading of it.
    missing: str = ""
    given: bool = True


def figures_for(deployments, *, now=None) -> dict[int, list[Figure]]:
    """{deployment id: [requests, errors, p95]} for the given deployments."""
    now = now or timezone.now()
    start = now - WINDOW
    ids = [d.pk for d in deployments]
    slots: dict[int, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    if ids:
        starts = _slot_starts(start, now)
        rows = (
            MetricPoint.objects.filter(deployment_id__in=ids, name__in=_NAMES, minute__gte=start)
            # Five-minute slots, grouped by the database: 12 points a series
            # are enough for a sparkline, and 5x fewer rows cross to Python.
            # Named by plain integers (day, hour, slot of the hour): a
            # truncated datetime would be made aware again row by row.
            .annotate(
                day=ExtractDay("minute"), hour=ExtractHour("minute"), slot=Floor(ExtractMinute("minute") / SLOT_MINUTES)
            )
            .values_list("deployment_id", "name", "day", "hour", "slot")
            # Rates add up over a deployment's models (averaged over the slot's
            # minutes); its p95 is its worst model's.
            .annotate(
                total=Sum("value"), minutes=Count("minute", distinct=True), worst=Max("value"), last=Max("minute")
            )
            .order_by()
        )
        for deployment_id, name, day, hour, slot, total, minutes, worst, last in rows:
            slot_start = starts.get((day, hour, int(slot)))
            if slot_start is None:
                continue
            value = worst if name == "p95_ms" else total / minutes
            slots[deployment_id][name][slot_start] = (value, last)
    return {d.pk: _figures(d, slots.get(d.pk, {}), start, now) for d in deployments}


def _slot_starts(start, now) -> dict[tuple[int, int, int], object]:
    """(day of month, hour, slot of the hour) in the current time zone, as the
    database's Extract functions give them, to each slot's start in the window."""
    local = timezone.localtime(start)
    first = local.replace(minute=local.minute - local.minute % SLOT_MINUTES, second=0, microsecond=0)
    starts, moment = {}, first
    while moment <= now:
        at = timezone.localtime(moment)
        starts[(at.day, at.hour, at.minute // SLOT_MINUTES)] = moment
        moment += timedelta(minutes=SLOT_MINUTES)
    return starts


def _figures(deployment, series: dict, start, now) -> list[Figure]:
    given = counter_source.figures_given(deployment)
    requests = series.get("requests_per_s", {})
    failures = series.get("failures_per_s", {})
    # Per cent of the slot's requests that failed; a slot without requests has none.
    errors = {
        slot: (100 * failures.get(slot, (0.0, None))[0] / rate, last)
        for slot, (rate, last) in requests.items()
        if rate > 0
    }
    return [
        _figure("Requests", "/s", requests, given["requests"], start, now),
        _figure("Errors", "%", errors, given["errors"], start, now, quiet="no requests lately"),
        _figure("p95", "ms", series.get("p95_ms", {}), given["p95"], start, now, quiet="no requests lately"),
    ]


def _figure(label, unit, slots: dict, why_not: str, start, now, *, quiet="no reading lately") -> Figure:
    """`slots`: {slot start: (value, newest minute in it)}."""
    if why_not:
        return Figure(label, unit, None, [], missing=why_not, given=False)
    latest = max(slots, default=None)
    fresh = latest is not None and now - slots[latest][1] <= FRESH
    return Figure(
        label,
        unit,
        slots[latest][0] if fresh else None,
        _lines({slot: value for slot, (value, _) in slots.items()}, start, now),
        missing="" if fresh else quiet,
    )


def _lines(points: dict, start, now) -> list[str]:
    """Polylines through the slots, broken where one is missing, so a gap in
    the readings is not drawn as a straight slope."""
    if not points:
        return []
    span = (now - start).total_seconds()
    top = max(points.values()) or 1.0
    runs, run, previous = [], [], None
    for minute in sorted(points):
        if previous is not None and (minute - previous) > timedelta(minutes=SLOT_MINUTES):
            runs.append(run)
            run = []
        x = (minute - start).total_seconds() / span * SPARK_WIDTH
        y = SPARK_HEIGHT - 1 - points[minute] / top * (SPARK_HEIGHT - 2)
        run.append(f"{x:.1f},{y:.1f}")
        previous = minute
    runs.append(run)
    # A lone minute is drawn as a short dash so it shows.
    return [" ".join(r) if len(r) > 1 else f"{r[0]} {_nudge(r[0])}" for r in runs]


def _nudge(point: str) -> str:
    x, y = point.split(",")
    return f"{float(x) + 1.5:.1f},{y}"
