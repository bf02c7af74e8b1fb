"""Walking the chain in seq order, each event checked against the one before."""

import hmac
from dataclasses import dataclass

from deployments.audit.signing import GENESIS_HASH, UnknownAuditKey, event_hash
from deployments.models import AuditEvent


@dataclass
class Walk:
    checked: int = 0
    bad_seq: int | None = None
    problem: str = ""
    # The last event that fitted (the genesis, or where the walk started, if none).
    last_seq: int = 0
    last_hash: str = GENESIS_HASH


def walk_chain(
    *, after_seq=0, after_hash=GENESIS_HASH, keyed=False, legacy_through=None, seen_by_anchor=None, batch_size=2000
):
    """Check every event after `after_seq` in seq order, each against the one before."""
    walk = Walk(last_seq=after_seq, last_hash=after_hash)
    events = AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq").iterator(chunk_size=batch_size)
    for event in events:
        walk.checked += 1
        problem = _event_problem(event, walk.last_seq + 1, walk.last_hash, keyed, legacy_through, seen_by_anchor or {})
        if problem:
            walk.bad_seq, walk.problem = event.seq, problem
            return walk
        keyed = keyed or bool(event.key_id)
        walk.last_seq, walk.last_hash = event.seq, event.hash
    return walk


def _event_problem(event, expected_seq, expected_prev, keyed, legacy_through, seen_by_anchor) -> str:
    if event.seq != expected_seq:
        return f"expected seq {expected_seq}, found {event.seq}"
    if event.prev_hash != expected_prev:
        return "does not link to the previous event"
    if not event.key_id:
        if keyed:
            return "is unkeyed but follows keyed events (only the oldest events may be unkeyed)"
        if legacy_through is not None and event.seq > legacy_through:
            return f"is unkeyed but the first anchor sealed the unkeyed events at seq {legacy_through}"
    try:
        digest = event_hash(event)
    except UnknownAuditKey:
        return f"is signed with key {event.key_id!r}, which AUDIT_KEYS does not hold"
    if not hmac.compare_digest(digest, event.hash):
        return "content does not match its hash"
    anchor = seen_by_anchor.get(event.seq)
    if anchor is not None and anchor["hash"] != event.hash:
        return f"is not the event the anchor of {anchor['at']} saw at this seq"
    return ""
