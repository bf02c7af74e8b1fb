"""Reads for the approvals inbox and request pages."""

import hashlib
from pathlib import Path

from django.core.cache import cache
from django.utils import timezone

from deployments import policy
from deployments.models import DeployRequest, Environment, ModelRepository

TABS = ("waiting", "mine", "recent")
SPEC_LABELS = {
    "repository_name": "repository",
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
    """Each spec field with what runs now and what the request would deploy."""
    if request.kind != DeployRequest.Kind.DEPLOY:
        return []
    rows = []
    for field, label in SPEC_LABELS.items():
        now, then = request.current.get(field), request.spec.get(field)
        rows.append({"field": label, "now": now, "proposed": then, "changed": bool(request.current) and now != then})
    return rows


def _version_fingerprints(repository: ModelRepository) -> dict[tuple[str, str], str]:
    """(model, version) -> SHA-256 over the version's files and the model's config."""
    root = Path(repository.path)
    prints = {}
    for model in repository.models.all():
        for version in model.versions:
            digest = hashlib.sha256(model.config_text.encode())
            folder = root / model.name / str(version)
            for file in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
                digest.update(str(file.relative_to(folder)).encode())
                with file.open("rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(chunk)
            prints[(model.name, str(version))] = digest.hexdigest()
    return prints


def repository_changes(request: DeployRequest) -> dict | None:
    """Models and versions added, removed and changed between the repository
    running now and the one requested; None when there is nothing to compare."""
    if request.kind != DeployRequest.Kind.DEPLOY:
        return None
    old_digest = request.current.get("repository_digest")
    new_digest = request.spec.get("repository_digest")
    if not old_digest or old_digest == new_digest:
        return None
    key = f"repository-diff:{old_digest}:{new_digest}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    old = ModelRepository.objects.filter(digest=old_digest).first()
    new = ModelRepository.objects.filter(digest=new_digest).first()
    if old is None or new is None:
        return {"unavailable": "One of the two repositories was deleted; only their digests differ."}
    before, after = _version_fingerprints(old), _version_fingerprints(new)
    label = lambda pair: f"{pair[0]} v{pair[1]}"  # noqa: E731
    diff = {
        "added": sorted(label(p) for p in after.keys() - before.keys()),
        "removed": sorted(label(p) for p in before.keys() - after.keys()),
        "changed": sorted(label(p) for p in before.keys() & after.keys() if before[p] != after[p]),
        "unchanged": len([p for p in before.keys() & after.keys() if before[p] == after[p]]),
    }
    # Repositories are content-addressed and immutable: the answer never changes.
    cache.set(key, diff, None)
    return diff
