"""A deployment's spec and its digest: what an approval binds and what makes
a redeploy a no-op or a change."""

import hashlib
import json

SPEC_FIELDS = ("mode", "entry_script", "pip_packages", "worker_count", "resources", "auth_enabled")


def spec_digest(*, repository_digest: str, target_id: int, **spec) -> str:
    payload = {"repository_digest": repository_digest, "target": target_id}
    payload.update({name: spec[name] for name in SPEC_FIELDS})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_of(deployment) -> dict:
    return {name: getattr(deployment, name) for name in SPEC_FIELDS}
