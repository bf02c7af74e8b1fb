from django.http import HttpRequest
from ninja import Query, Router

from deployments import policy
from deployments.api.bodies import AuditQuery
from deployments.api.pages import next_link
from deployments.api.schemas import AuditPage, ChainReport, answers
from deployments.audit.verification import verify_chain
from deployments.errors import NotAllowed
from deployments.selectors.audit_log import audit_page, parse_audit_filters, visible_events
from deployments.serializers import audit_event_json

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


@router.get("audit/verify", response=answers({200: ChainReport}), url_name="audit-verify")
def audit_verify(request: HttpRequest):
    """Walks the whole hash chain: for those who may read the whole log."""
    if not policy.can(request.user, "deployments.view_auditevent"):
        raise NotAllowed("Verifying the audit log needs the viewer role or above.")
    report = verify_chain()
    return {"ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq}
