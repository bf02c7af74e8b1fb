from django.http import JsonResponse
from django.urls import reverse

from deployments import policy
from deployments.api.auth import api_view
from deployments.audit import verify_chain
from deployments.errors import DomainError, NotAllowed
from deployments.selectors.audit_log import audit_page, parse_audit_filters, visible_events
from deployments.selectors.system_status import broker_status, database_status, worker_status
from deployments.serializers import audit_event_json

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
    if not policy.can_somewhere(user, "deployments.view_auditevent"):
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


@api_view("GET")
def audit_list(request):
    _require_audit_access(request.user)
    filters = parse_audit_filters(request.GET)
    limit = _int_param(request.GET, "limit", AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX)
    before = _int_param(request.GET, "before", None)
    events, next_cursor = audit_page(filters, before_seq=before, limit=limit, events=visible_events(request.user))
    next_url = None
    if next_cursor is not None:
        query = request.GET.copy()
        query["before"] = str(next_cursor)
        next_url = request.build_absolute_uri(f"{reverse('api:audit')}?{query.urlencode()}")
    return JsonResponse({"results": [audit_event_json(e) for e in events], "next": next_url})


@api_view("GET")
def audit_verify(request):
    # The whole chain: only for those who may read the whole log.
    if not policy.can(request.user, "deployments.view_auditevent"):
        raise NotAllowed("Verifying the audit log needs the viewer role or above.")
    report = verify_chain()
    return JsonResponse({"ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq})
