from django.http import HttpRequest
from ninja import Query, Router

from deployments.api.bodies import ApprovalQuery
from deployments.api.schemas import ApprovalPage, answers
from deployments.selectors.approvals import inbox
from deployments.serializers import request_json

router = Router(tags=["approvals"])


@router.get("approvals", response=answers({200: ApprovalPage}), url_name="approvals")
def approval_list(request: HttpRequest, filters: Query[ApprovalQuery]):
    """`waiting` (for me to decide, the default), `mine`, or `recent`; `before` pages on."""
    rows, next_cursor = inbox(request.user, filters.tab, before_id=filters.before)
    return {
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
