"""Queueing an operation: the one step that creating, redeploying, deleting,
approving and restarting all end with."""

from django.utils import timezone

from deployments import queue
from deployments.models import Deployment, Operation


def start_operation(*, deployment: Deployment, kind: str, actor, reason: str = "", params=None) -> Operation:
    """Queue `kind` for the deployment (callers have settled whether it needs approval)."""
    operation = Operation.objects.create(
        deployment=deployment,
        kind=kind,
        spec_digest=deployment.spec_digest,
        params=params or {},
        reason=reason,
        created_by=actor,
        enqueued_at=timezone.now(),
    )
    queue.run_operation(operation)
    return operation
