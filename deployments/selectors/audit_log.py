from dataclasses import dataclass
from datetime import UTC, datetime

from django.apps import apps
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

from deployments import policy
from deployments.audit.changes import Change, changes
from deployments.errors import DomainError
from deployments.models import AuditEvent, Environment


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    object: str = ""
    environment: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def as_query(self) -> dict[str, str]:
        pairs = {
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "environment": self.environment,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {key: value for key, value in pairs.items() if value}


def _parse_moment(name: str, raw: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        moment = parse_datetime(raw)
        if moment is None and (day := parse_date(raw)) is not None:
            moment = datetime(day.year, day.month, day.day)
        if moment is not None:
            # Compared in UTC by the database: a moment that parses but has no
            # UTC equivalent (0001-01-01T00:00:00+14:00) must fail here, not
            # as an OverflowError inside the query.
            moment = (make_aware(moment) if is_naive(moment) else moment).astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise DomainError(
            f"'{name}' must be a date or an ISO 8601 time between the years 1 and 9999 in UTC, "
            "e.g. 2026-11-25T08:00:00Z.",
            path=name,
        )
    return moment


_TEXT_FILTERS = ("actor", "action", "object", "environment")


def parse_audit_filters_keeping_the_rest(params) -> tuple[AuditFilters, list[str]]:
    """For the page: a malformed moment is reported and left out; every other
    filter still applies (one typo must not show the whole log)."""
    moments, problems = {}, []
    for name in ("since", "until"):
        try:
            moments[name] = _parse_moment(name, params.get(name, ""))
        except DomainError as exc:
            moments[name] = None
            problems.append(exc.message)
    return AuditFilters(**{key: params.get(key, "").strip() for key in _TEXT_FILTERS}, **moments), problems


def parse_audit_filters(params) -> AuditFilters:
    """For the API: the first malformed filter is a 400 naming it."""
    return AuditFilters(
        **{key: params.get(key, "").strip() for key in _TEXT_FILTERS},
        since=_parse_moment("since", params.get("since", "")),
        until=_parse_moment("until", params.get("until", "")),
    )


def visible_events(user):
    """Everything for a global viewer; a member of some environments only sees
    their events (events about no environment, e.g. sign-ins, stay global)."""
    if policy.can(user, "deployments.view_auditevent"):
        return AuditEvent.objects.all()
    names = Environment.objects.filter(
        pk__in=policy.environments_with(user, "deployments.view_auditevent")
    ).values_list("name", flat=True)
    return AuditEvent.objects.filter(environment__in=list(names))


def audit_events(filters: AuditFilters, events=None):
    """Events matching the filters, newest first.

    action "deployment." (trailing dot) matches a whole family; object is
    "type" or "type:id", e.g. "auth.user:3".
    """
    events = AuditEvent.objects.all() if events is None else events
    if filters.environment:
        events = events.filter(environment=filters.environment)
    if filters.actor:
        events = events.filter(actor_name=filters.actor)
    if filters.action:
        if filters.action.endswith("."):
            events = events.filter(action__startswith=filters.action)
        else:
            events = events.filter(action=filters.action)
    if filters.object:
        object_type, _, object_id = filters.object.partition(":")
        events = events.filter(object_type=object_type)
        if object_id:
            events = events.filter(object_id=object_id)
    if filters.since:
        events = events.filter(at__gte=filters.since)
    if filters.until:
        events = events.filter(at__lt=filters.until)
    return events.order_by("-seq")


def audit_page(filters: AuditFilters, *, before_seq: int | None, limit: int, events=None):
    """One keyset page: up to `limit` events older than `before_seq`, and the
    cursor for the next page (None on the last one). Cost does not grow with
    how deep the reader pages, unlike OFFSET."""
    events = audit_events(filters, events)
    if before_seq is not None:
        events = events.filter(seq__lt=before_seq)
    rows = list(events[: limit + 1])
    next_cursor = rows[limit - 1].seq if len(rows) > limit else None
    return rows[:limit], next_cursor


def object_events(user, obj):
    """The events about `obj` that `user` may read (None for someone who may
    not read the log), and its "type:id" for the audit log's object filter."""
    label = f"{obj._meta.label_lower}:{obj.pk}"
    if not policy.can_somewhere(user, "deployments.view_auditevent"):
        return None, label
    return visible_events(user).filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)), label


def object_history(user, obj, *, limit: int = 20) -> dict:
    """The newest events about `obj` for its page's History section (empty
    for someone who may not read the log)."""
    events, label = object_events(user, obj)
    return {"history": list(events.order_by("-seq")[:limit]) if events is not None else [], "history_object": label}


# Other events of the same request shown beside an event: a request writes a
# handful; the cap keeps a pathological one from making a page of thousands.
SAME_REQUEST_LIMIT = 50
# Objects an event's details name by id: the approval events are about the
# deployment, and the request they decide is in their details.
_DETAIL_REFERENCES = {
    "request": "deployments.deployrequest",
    "rollout": "deployments.rollout",
    "migration": "deployments.migration",
}


@dataclass(frozen=True)
class EventDetail:
    event: AuditEvent
    changes: list[Change]
    # The neighbours in the log as this user sees it (None at either end).
    previous_seq: int | None
    next_seq: int | None
    same_request: list[AuditEvent]

    @property
    def unchanged(self) -> list[Change]:
        return [change for change in self.changes if change.kind == "unchanged"]

    @property
    def changed(self) -> list[Change]:
        return [change for change in self.changes if change.kind != "unchanged"]

    def references(self) -> list[tuple[str, str]]:
        """(object_type, object_id) of the event's object and of the objects its details name."""
        found = [(self.event.object_type, self.event.object_id)] if self.event.object_type else []
        details = self.event.details if isinstance(self.event.details, dict) else {}
        for key, object_type in _DETAIL_REFERENCES.items():
            value = details.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found.append((object_type, str(value)))
        return found


def event_detail(user, seq: int) -> EventDetail | None:
    """One event if `user` may see it (None as for one that does not exist),
    its neighbours and its request's other events under the same rule: the
    same few queries however long the log."""
    events = visible_events(user)
    event = events.filter(seq=seq).first()
    if event is None:
        return None
    same_request = []
    if event.request_id:
        same_request = list(
            events.filter(request_id=event.request_id).exclude(seq=seq).order_by("seq")[:SAME_REQUEST_LIMIT]
        )
    return EventDetail(
        event=event,
        changes=changes(event.before, event.after),
        previous_seq=events.filter(seq__lt=seq).order_by("-seq").values_list("seq", flat=True).first(),
        next_seq=events.filter(seq__gt=seq).order_by("seq").values_list("seq", flat=True).first(),
        same_request=same_request,
    )


def visible_objects(user, references) -> set[tuple[str, str]]:
    """Those of (object_type, object_id) that still exist and `user` may see:
    a link to anything else would only lead to a 404. One query per reference;
    types without a `.visible_to()` (users, tokens) are never linked."""
    found = set()
    for object_type, object_id in references:
        try:
            model = apps.get_model(object_type)
        except (LookupError, ValueError):
            continue
        restrict = getattr(model._default_manager, "visible_to", None)
        if not (object_id.isascii() and object_id.isdigit()) or restrict is None:
            continue
        if restrict(user).filter(pk=int(object_id)).exists():
            found.add((object_type, object_id))
    return found
