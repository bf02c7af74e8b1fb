"""A deployment page's History: its audit events, filterable by kind, with
test-inference calls folded into one line per hour (a busy console would
otherwise push every change off the section)."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncHour

from deployments.selectors.audit_log import object_events

CONSOLE = "console."
# What the engine and the health checks did, as opposed to what people asked.
ENGINE_ACTIONS = (
    "deployment.started",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.status_changed",
    "deployment.restarted",
    "deployment.deleted",
    "deployment.retired",
    "deployment.key_regenerated",
    "deployment.traffic_changed",
    "deployment.request_expired",
)
KINDS = {
    "": "Everything",
    "changes": "Changes people asked for",
    "engine": "What the engine did",
    "console": "Console calls",
}
LIMIT = 20


@dataclass(frozen=True)
class ConsoleHour:
    """Every console call on the object in one clock hour."""

    hour: object
    first: object
    last: object
    calls: int
    by: dict[str, int] = field(default_factory=dict)

    @property
    def at(self):
        return self.last

    @property
    def until(self):
        """The end of the hour, for the audit log's (exclusive) until filter."""
        return self.hour + timedelta(hours=1)

    @property
    def folded(self) -> bool:
        return True


def kind_key(raw: str) -> str:
    return raw if raw in KINDS else ""


def history(user, obj, kind: str = "", *, limit: int = LIMIT) -> dict:
    """The newest entries about `obj`, newest first: events, and for
    Everything and Console calls one ConsoleHour per hour with calls."""
    events, label = object_events(user, obj)
    context = {"history": [], "history_object": label, "history_kind": kind, "history_kinds": KINDS}
    if events is None:
        return context
    console = Q(action__startswith=CONSOLE)
    entries: list = []
    if kind in ("", "changes", "engine"):
        chosen = events.exclude(console)
        if kind == "changes":
            chosen = chosen.exclude(action__in=ENGINE_ACTIONS)
        elif kind == "engine":
            chosen = chosen.filter(action__in=ENGINE_ACTIONS)
        entries = list(chosen.order_by("-seq")[:limit])
    if kind in ("", "console"):
        calls = events.filter(console)
        if len(entries) == limit:
            # Hours older than the last event shown would fall off the list anyway.
            calls = calls.filter(at__gte=entries[-1].at)
        entries += _console_hours(calls, limit)
        entries.sort(key=lambda entry: entry.at, reverse=True)
    context["history"] = entries[:limit]
    return context


def _console_hours(calls, limit: int) -> list[ConsoleHour]:
    rows = (
        calls.annotate(hour=TruncHour("at"))
        .values("hour", "actor_name")
        .annotate(n=Count("seq"), first=Min("at"), last=Max("at"))
        .order_by("-hour", "actor_name")[: limit * 50]
    )
    hours: dict = {}
    for row in rows:
        if row["hour"] not in hours and len(hours) == limit:
            break
        entry = hours.setdefault(row["hour"], {"first": row["first"], "last": row["last"], "calls": 0, "by": {}})
        entry["first"] = min(entry["first"], row["first"])
        entry["last"] = max(entry["last"], row["last"])
        entry["calls"] += row["n"]
        entry["by"][row["actor_name"]] = row["n"]
    return [ConsoleHour(hour, **values) for hour, values in hours.items()]
