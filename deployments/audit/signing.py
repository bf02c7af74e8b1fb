"""Each audit event's hash: an HMAC-SHA256 under a key kept outside the
database (AUDIT_KEYS, newest first; the event stores the key's id), over a
canonical JSON of its content and the previous event's hash. Events written
before the chain was keyed keep their plain SHA-256 (key_id blank)."""

import hashlib
import hmac
import json
from datetime import UTC
from functools import lru_cache

from django.conf import settings

from deployments.models import AuditEvent

GENESIS_HASH = "0" * 64


def canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class UnknownAuditKey(Exception):
    """An event or anchor names a key id that AUDIT_KEYS does not hold."""


@lru_cache(maxsize=4)
def _parse_keys(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    return tuple((key_id, secret.encode()) for key_id, _, secret in (key.partition(":") for key in keys))


def keys() -> tuple[tuple[str, bytes], ...]:
    """(id, secret) pairs, newest first (settings checked their shape)."""
    return _parse_keys(tuple(settings.AUDIT_KEYS))


def secret_of(key_id: str) -> bytes:
    for candidate, secret in keys():
        if candidate == key_id:
            return secret
    raise UnknownAuditKey(key_id)


def _payload(event: AuditEvent) -> dict:
    payload = {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(),
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "before": event.before,
        "after": event.after,
        "details": event.details,
        "request_id": event.request_id,
        "source_ip": event.source_ip,
        "prev_hash": event.prev_hash,
    }
    if event.environment:
        payload["environment"] = event.environment
    if event.key_id:
        payload["key_id"] = event.key_id
    return payload


def event_hash(event: AuditEvent) -> str:
    """HMAC-SHA256 under the key the event names; plain SHA-256 for a legacy
    (unkeyed) event. Raises UnknownAuditKey for a key AUDIT_KEYS lacks."""
    content = canonical(_payload(event))
    if not event.key_id:
        return hashlib.sha256(content).hexdigest()
    return hmac.new(secret_of(event.key_id), content, hashlib.sha256).hexdigest()
