from django.contrib import messages
from django.shortcuts import render
from django.views.decorators.http import require_safe

from deployments.errors import DomainError
from deployments.selectors.audit_log import AuditFilters, audit_page, parse_audit_filters
from deployments.views.access import require_perm

PAGE_SIZE = 50


@require_safe
def audit_log(request):
    require_perm(request.user, "deployments.view_auditevent", "Reading the audit log needs the viewer role.")
    try:
        filters = parse_audit_filters(request.GET)
    except DomainError as exc:
        messages.error(request, exc.message)
        filters = AuditFilters()
    before = request.GET.get("before", "")
    events, next_cursor = audit_page(filters, before_seq=int(before) if before.isdigit() else None, limit=PAGE_SIZE)
    return render(
        request,
        "deployments/audit_log.html",
        {"events": events, "filters": filters, "next_cursor": next_cursor, "query": filters.as_query()},
    )
