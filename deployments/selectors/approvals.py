"""Reads for the approvals inbox and request pages."""

from django.utils import timezone

from deployments import policy
from deployments.models import DeployRequest, Environment
from deployments.selectors.revisions import digest_diff

TABS = ("waiting", "mine", "recent")
SPEC_LABELS = {
    "repository_name": "repository",
    "repository_revision": "revision",
    "repository_digest": "repository digest",
    "target": "target",
    "mode": "mode",
    "entry_script": "entry script",
    "pip_packages": "pip packages",
    "worker_count": "worker processes (WORKER_COUNT)",
    "resources": "resources",
    "auth_enabled": "key auth",
}


def inbox(user, tab: str, *, before_id: int | None = None, limit: int = 50):
    """One keyset page of a tab, newest first, and the next page's cursor.
    waiting: pending requests this user may decide and has not; mine: the
    user's own; recent: decided ones."""
    requests = (
        DeployRequest.objects.visible_to(user).select_related("deployment", "environment").prefetch_related("approvals")
    )
    if tab == "waiting":
        requests = _waiting_for(user, requests)
    elif tab == "mine":
        requests = requests.filter(requested_by=user)
    else:
        requests = requests.exclude(status=DeployRequest.Status.PENDING)
    if before_id is not None:
        requests = requests.filter(pk__lt=before_id)
    rows = list(requests.order_by("-id")[: limit + 1])
    for row in rows:
        # From the prefetched decisions: a COUNT annotation would group every
        # matching row before the LIMIT applies.
        row.approved = sum(a.decision == "approve" for a in row.approvals.all())
    return rows[:limit], (rows[limit - 1].pk if len(rows) > limit else None)


def _waiting_for(user, requests):
    deciders = [env.pk for env in Environment.objects.all() if policy.may_approve(user, env)]
    return (
        requests.filter(status=DeployRequest.Status.PENDING, expires_at__gt=timezone.now(), environment__in=deciders)
        .exclude(requested_by=user)
        .exclude(approvals__approver=user)
    )


def waiting_count(user) -> int:
    """Pending requests this user may decide and has not: the navigation's badge."""
    return _waiting_for(user, DeployRequest.objects.visible_to(user)).count()


def request_detail(user, request_id: int) -> DeployRequest | None:
    return (
        DeployRequest.objects.visible_to(user)
        .select_related("deployment__target", "environment__approver_group", "requested_by", "operation")
        .prefetch_related("approvals")
        .filter(pk=request_id)
        .first()
    )


def spec_changes(request: DeployRequest) -> list[dict]:
    """Each spec field with what runs now and what the request would deploy
    (a rollout's candidate, for a rollout)."""
    if request.kind not in (DeployRequest.Kind.DEPLOY, DeployRequest.Kind.ROLLOUT):
        return []
    rows = []
    for field, label in SPEC_LABELS.items():
        now, then = request.current.get(field), request.spec.get(field)
        rows.append({"field": label, "now": now, "proposed": then, "changed": bool(request.current) and now != then})
    return rows


def repository_changes(request: DeployRequest) -> dict | None:
    """Models and versions added, removed and changed between the repository
    running now and the one requested; None when there is nothing to compare."""
    if request.kind not in (DeployRequest.Kind.DEPLOY, DeployRequest.Kind.ROLLOUT):
        return None
    return digest_diff(request.current.get("repository_digest", ""), request.spec.get("repository_digest", ""))
