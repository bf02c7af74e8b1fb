import csv
import itertools
import json

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from deployments.errors import DomainError
from deployments.models import Environment
from deployments.selectors.audit_log import (
    AuditFilters,
    audit_events,
    audit_page,
    event_detail,
    parse_audit_filters,
    parse_audit_filters_keeping_the_rest,
    visible_events,
    visible_objects,
)
from deployments.serializers import audit_event_json
from deployments.views.access import require_perm

PAGE_SIZE = 50
EXPORT_FIELDS = [
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "environment",
    "request_id",
    "source_ip",
    "details",
    "before",
    "after",
    "hash",
]


def _filters(request) -> tuple[AuditFilters, bool]:
    filters, problems = parse_audit_filters_keeping_the_rest(request.GET)
    for problem in problems:
        messages.error(request, f"{problem} That filter was left out; the others apply.")
    return filters, bool(problems)


@require_safe
def audit_log(request):
    require_perm(request.user, "deployments.view_auditevent", "Reading the audit log needs the viewer role.")
    filters, malformed = _filters(request)
    before = request.GET.get("before", "")
    events, next_cursor = audit_page(
        filters,
        before_seq=int(before) if before.isdigit() else None,
        limit=PAGE_SIZE,
        events=visible_events(request.user),
    )
    return render(
        request,
        "deployments/audit_log.html",
        {
            "events": events,
            "filters": filters,
            "next_cursor": next_cursor,
            "query": filters.as_query(),
            "environments": Environment.objects.visible_to(request.user).values_list("name", flat=True),
        },
        # The page still shows what the other filters select, but the answer
        # says the request was malformed (as the API's does).
        status=400 if malformed else 200,
    )


# The page of each kind of object an event can be about (object_type is
# app_label.model), which takes the object's id.
OBJECT_PAGES = {
    "deployments.deployment": "deployment",
    "deployments.modelrepository": "repository",
    "deployments.modelline": "line",
    "deployments.deployrequest": "approval",
    "deployments.target": "target",
    "deployments.environment": "environment",
    "deployments.rollout": "rollout",
    "deployments.migration": "migration",
    "deployments.loadtest": "loadtest",
    "deployments.configsearch": "config-search",
}
# How a page names an object its event's details refer to.
OBJECT_WORDS = {"deployments.deployrequest": "approval request"}


def _object_links(user, detail) -> tuple[str, list[tuple[str, str]]]:
    """The event's object's page, and (label, page) of the objects its details
    name, where the page exists and `user` may see it."""
    event = detail.event
    own = (event.object_type, event.object_id)
    with_pages = [ref for ref in detail.references() if ref[0] in OBJECT_PAGES]
    pages = {ref: reverse(OBJECT_PAGES[ref[0]], args=[int(ref[1])]) for ref in visible_objects(user, with_pages)}
    related = []
    for object_type, object_id in with_pages:  # in the details' order
        if (object_type, object_id) in pages and (object_type, object_id) != own:
            label = OBJECT_WORDS.get(object_type, object_type.rpartition(".")[2])
            related.append((f"{label} #{object_id}", pages[object_type, object_id]))
    return pages.get(own, ""), related


@require_safe
def event(request, seq: int):
    """One event with everything it recorded. Whoever may not see it gets the
    404 of an event that does not exist (no role at all included): its seq
    tells nobody else that it is there."""
    detail = event_detail(request.user, seq)
    if detail is None:
        raise Http404("No such event.")
    object_url, related = _object_links(request.user, detail)
    context = {"detail": detail, "event": detail.event, "object_url": object_url, "related": related}
    return render(request, "deployments/audit_event.html", context)


# What spreadsheets take for the start of a formula (OWASP, "CSV Injection").
# defusedcsv was considered: it leaves tab and carriage return alone and
# rewrites "|" inside values, so the list is kept here, short and exact.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    """One exported cell: JSON for structures, and any text a spreadsheet would
    run as a formula prefixed with a single quote, which shows it as text."""
    if isinstance(value, dict | list):
        value = json.dumps(value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """csv.writer writes to it; each row comes back as a string to stream."""

    def write(self, value):
        return value


@require_safe
def export(request, fmt: str):
    """The filtered range, streamed oldest first so a reader can re-verify it
    link by link; no page size, no copy of it in memory."""
    require_perm(request.user, "deployments.view_auditevent", "Reading the audit log needs the viewer role.")
    try:
        filters = parse_audit_filters(request.GET)
    except DomainError as exc:
        # A download link has no page to go back to: the reason, as a 400.
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    rows = (
        audit_event_json(event)
        for event in audit_events(filters, visible_events(request.user)).order_by("seq").iterator(chunk_size=2000)
    )
    if fmt == "csv":
        writer = csv.writer(_Echo())
        lines = (writer.writerow([_csv_cell(row[f]) for f in EXPORT_FIELDS]) for row in rows)
        body = itertools.chain([writer.writerow(EXPORT_FIELDS)], lines)
        response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_array(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return response


def _json_array(rows):
    yield "["
    for index, row in enumerate(rows):
        yield ("," if index else "") + json.dumps(row)
    yield "]"
