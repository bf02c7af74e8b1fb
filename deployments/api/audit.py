from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router

from deployments import policy
from deployments.api.bodies import AuditQuery
from deployments.api.errors import NotFound
from deployments.api.pages import next_link
from deployments.api.schemas import AuditEventDetail, AuditPage, ChainReport, answers
from deployments.audit.verification import verify_chain
from deployments.errors import NotAllowed
from deployments.selectors.audit_log import audit_page, event_detail, parse_audit_filters, visible_events
from deployments.serializers import audit_event_detail_json, audit_event_json

router = Router(tags=["audit"])


@router.get("audit", response=answers({200: AuditPage}), url_name="audit")
def audit_list(request: HttpRequest, filters: Query[AuditQuery]):
    """Events newest first, as far as the caller may see them; `next` pages on."""
    if not policy.can_somewhere(request.user, "deployments.view_auditevent"):
        raise NotAllowed("Reading the audit log needs the viewer role or above.")
    parsed = parse_audit_filters(filters.model_dump())
    events, next_cursor = audit_page(
        parsed, before_seq=filters.before, limit=filters.limit, events=visible_events(request.user)
    )
    return {
        "results": [audit_event_json(e) for e in events],
        "next": next_link(request, "api:audit", "before", next_cursor) if next_cursor is not None else None,
    }


@router.get("audit/{int:seq}", response=answers({200: AuditEventDetail}, 404), url_name="audit-event")
def audit_event(request: HttpRequest, seq: int):
    """One event with its `prev_hash` and `key_id`, what it changed key by
    key (`changes`; nested objects by dotted path), the events before and
    after it and the other events of its request, all as far as the caller
    may see them. An event the caller may not see is a 404, as one that
    does not exist."""
    detail = event_detail(request.user, seq)
    if detail is None:
        raise NotFound("No such event.")
    return audit_event_detail_json(
        detail, lambda other: request.build_absolute_uri(reverse("api:audit-event", args=[other]))
    )


@router.get("audit/verify", response=answers({200: ChainReport}), url_name="audit-verify")
def audit_verify(request: HttpRequest):
    """Walks the whole hash chain: for those who may read the whole log."""
    if not policy.can(request.user, "deployments.view_auditevent"):
        raise NotAllowed("Verifying the audit log needs the viewer role or above.")
    report = verify_chain()
    return {"ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq}
