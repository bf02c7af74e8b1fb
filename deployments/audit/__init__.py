"""The audit log: `audit()` appends one event to a hash chain.

Editing, deleting or reordering any row breaks the chain from that row on,
and a database writer without the key cannot compute a hash that fits
(signing). What a chain alone cannot show is its end cut off: the head is
written down outside the database at intervals (anchors), and the chain is
verified against every anchor (verification).

Appends are serialised so concurrent writers still form one linear chain.
"""

import json

from django.db import connection, transaction
from django.utils import timezone

from deployments import request_context
from deployments.audit.signing import GENESIS_HASH, canonical, event_hash, keys
from deployments.models import AuditEvent

# Any fixed number: the key of the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_KEY = 0x7A1D17


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite runs with transaction_mode=IMMEDIATE: a write transaction already
    # holds the database's single write lock from its first statement.


def _json_safe(value):
    # Round-trip through JSON so what is hashed now is exactly what the
    # database will give back when the chain is verified later.
    return None if value is None else json.loads(canonical(value))


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
            key_id=keys()[0][0],  # the newest key signs
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
