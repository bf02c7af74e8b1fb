from django.http import JsonResponse

from deployments.api.auth import api_view
from deployments.errors import DomainError
from deployments.selectors.approvals import TABS, inbox
from deployments.serializers import request_json


@api_view("GET")
def approvals(request):
    """?tab=waiting (for me to decide, the default) | mine | recent; ?before=<id> pages."""
    tab = request.GET.get("tab", "waiting")
    if tab not in TABS:
        raise DomainError(f"tab is one of {', '.join(TABS)}.", path="tab")
    before = request.GET.get("before", "")
    rows, next_cursor = inbox(request.user, tab, before_id=int(before) if before.isdigit() else None)
    return JsonResponse(
        {
            "results": [
                {
                    **request_json(row),
                    "deployment": {"id": row.deployment_id, "name": row.deployment.name},
                    "environment": row.environment.name,
                }
                for row in rows
            ],
            "next_before": next_cursor,
        }
    )
