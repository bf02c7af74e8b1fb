"""The audit log: one helper to append, one function to verify.

Each event's hash is SHA-256 over a canonical JSON of its content and the
previous event's hash, so editing, deleting or reordering any row breaks the
chain from that row on. Appends are serialised so concurrent writers still form
one linear chain.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC

from django.db import connection, transaction
from django.utils import timezone

from deployments import request_context
from deployments.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any fixed number: the key of the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_KEY = 0x7A1D17


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_hash(event: AuditEvent) -> str:
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
    return hashlib.sha256(_canonical(payload)).hexdigest()


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite runs with transaction_mode=IMMEDIATE: a write transaction already
    # holds the database's single write lock from its first statement.


def _json_safe(value):
    # Round-trip through JSON so what is hashed now is exactly what the
    # database will give back when the chain is verified later.
    return None if value is None else json.loads(_canonical(value))


def audit(
    *,
    action: str,
    actor=None,
    actor_name: str = "",
    obj=None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before=None,
    after=None,
    details=None,
) -> AuditEvent:
    """Append one event, inside the caller's transaction when there is one."""
    environment = ""
    if obj is not None:
        environment = _environment_of(obj)
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    context = request_context.current()
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        event = AuditEvent(
            seq=seq,
            at=timezone.now(),
            actor=actor if actor is not None and actor.pk else None,
            actor_name=(actor_name or "system")[:150],
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr[:200],
            environment=environment,
            before=_json_safe(before),
            after=_json_safe(after),
            details=_json_safe(details or {}),
            request_id=context.request_id,
            source_ip=context.source_ip,
            prev_hash=prev_hash,
        )
        event.hash = event_hash(event)
        event.save()
    return event


def _environment_of(obj) -> str:
    from deployments.models import Deployment, Environment

    if isinstance(obj, Environment):
        return obj.name
    if isinstance(obj, Deployment):
        return obj.target.environment.name
    environment = getattr(obj, "environment", None)
    return environment.name if isinstance(environment, Environment) else ""


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str = ""


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the whole chain in seq order; report the first event that does not fit."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    events = AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size)
    for event in events:
        checked += 1
        if event.seq != expected_seq:
            return ChainReport(False, checked, event.seq, f"expected seq {expected_seq}, found {event.seq}")
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, event.seq, "does not link to the previous event")
        if event_hash(event) != event.hash:
            return ChainReport(False, checked, event.seq, "content does not match its hash")
        expected_prev, expected_seq = event.hash, expected_seq + 1
    return ChainReport(True, checked, None)
