from django.http import JsonResponse
from django.urls import reverse

from deployments.api.auth import api_view
from deployments.audit import verify_chain
from deployments.errors import DomainError, NotAllowed
from deployments.selectors.audit_log import audit_page, parse_audit_filters
from deployments.selectors.system_status import broker_status, database_status, worker_status

AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX = 50, 500


@api_view("GET", authenticated=False)
def health(request):
    database, broker = database_status(), broker_status()
    workers = worker_status()
    ok = database == "ok" and broker == "ok"
    body = {
        "status": "ok" if ok else "error",
        "database": database,
        "broker": broker,
        # Informational: the web tier is up even while no worker runs.
        "workers": {
            "online": workers.online,
            "last_seen": workers.last_seen.isoformat() if workers.last_seen else None,
        },
    }
    return JsonResponse(body, status=200 if ok else 503)


def _require_audit_access(user):
    if not user.has_perm("deployments.view_auditevent"):
        raise NotAllowed("Reading the audit log needs the viewer role or above.")


def _int_param(params, name: str, default: int | None, maximum: int | None = None) -> int | None:
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DomainError(f"'{name}' must be a whole number.", path=name) from None
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise DomainError(f"'{name}' must be at least 1{limit}.", path=name)
    return value


def serialize_audit_event(event) -> dict:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "details": event.details,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "source_ip": event.source_ip,
    }


@api_view("GET")
def audit_list(request):
    _require_audit_access(request.user)
    filters = parse_audit_filters(request.GET)
    limit = _int_param(request.GET, "limit", AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX)
    before = _int_param(request.GET, "before", None)
    events, next_cursor = audit_page(filters, before_seq=before, limit=limit)
    next_url = None
    if next_cursor is not None:
        query = request.GET.copy()
        query["before"] = str(next_cursor)
        next_url = request.build_absolute_uri(f"{reverse('api:audit')}?{query.urlencode()}")
    return JsonResponse({"results": [serialize_audit_event(e) for e in events], "next": next_url})


@api_view("GET")
def audit_verify(request):
    _require_audit_access(request.user)
    report = verify_chain()
    return JsonResponse({"ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq})
