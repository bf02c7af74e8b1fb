"""The audit log: one helper to append, one function to verify, one to anchor.

Each event's hash is an HMAC-SHA256, under a key kept outside the database
(AUDIT_KEYS; its id is stored in the event), over a canonical JSON of its
content and the previous event's hash. Editing, deleting or reordering any row
breaks the chain from that row on, and a database writer without the key
cannot compute a hash that fits. Events written before the chain was keyed
keep their plain SHA-256 (key_id blank): a legacy prefix, which nothing keyed
may follow.

What a chain alone cannot show is its end cut off. So the head is written down
outside the database at intervals (anchor_chain, from beat): an owner-only,
append-only file of signed JSON lines, and optionally a webhook and syslog. The chain is
verified against every line, so events an anchor saw cannot vanish, and the
first line also seals the legacy prefix (how far the unkeyed events go).

Appends are serialised so concurrent writers still form one linear chain.
"""

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from deployments import request_context
from deployments.models import AuditEvent

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Any fixed number: the key of the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_KEY = 0x7A1D17
ANCHOR_FILE = "anchors.jsonl"
# Domain separation: an anchor's MAC can never pass for an event's, or back.
_ANCHOR_CONTEXT = b"triton-dashboard audit anchor\n"


class UnknownAuditKey(Exception):
    """An event or anchor names a key id that AUDIT_KEYS does not hold."""


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@lru_cache(maxsize=4)
def _parse_keys(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    return tuple((key_id, secret.encode()) for key_id, _, secret in (key.partition(":") for key in keys))


def _keys() -> tuple[tuple[str, bytes], ...]:
    """(id, secret) pairs, newest first (settings checked their shape)."""
    return _parse_keys(tuple(settings.AUDIT_KEYS))


def _secret(key_id: str) -> bytes:
    for candidate, secret in _keys():
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
    canonical = _canonical(_payload(event))
    if not event.key_id:
        return hashlib.sha256(canonical).hexdigest()
    return hmac.new(_secret(event.key_id), canonical, hashlib.sha256).hexdigest()


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
            key_id=_keys()[0][0],  # the newest key signs
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
    # The newest anchor the chain was checked against (None: not anchored yet).
    anchored_seq: int | None = None
    anchored_at: str = ""


class AnchorError(Exception):
    """The anchor file cannot be trusted (malformed, or a line not signed by any key)."""


def anchor_path() -> Path:
    return Path(settings.AUDIT_ANCHOR_DIR) / ANCHOR_FILE


def _anchor_mac(line: dict, secret: bytes) -> str:
    fields = {key: value for key, value in line.items() if key != "mac"}
    return hmac.new(secret, _ANCHOR_CONTEXT + _canonical(fields), hashlib.sha256).hexdigest()


class AnchorRefused(Exception):
    """The chain since the last anchor does not verify: no new anchor vouches for it."""


def _checked_line(raw: str | bytes, where: str) -> dict:
    """One anchor line, its MAC checked under the key it names. Raises AnchorError."""
    try:
        line = json.loads(raw)
        seq, digest, legacy_through = int(line["seq"]), str(line["hash"]), int(line["legacy_through"])
        secret = _secret(str(line["key_id"]))
    except UnknownAuditKey as exc:
        raise AnchorError(f"{where} is signed with key {exc.args[0]!r}, which AUDIT_KEYS does not hold") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorError(f"{where} is malformed ({exc})") from None
    if not hmac.compare_digest(str(line.get("mac", "")), _anchor_mac(line, secret)):
        raise AnchorError(f"{where} does not match its MAC: the file was edited")
    return {**line, "seq": seq, "hash": digest, "legacy_through": legacy_through}


def read_anchors() -> list[dict]:
    """Every anchor line, each checked against its key. Raises AnchorError."""
    try:
        text = anchor_path().read_text()
    except FileNotFoundError:
        return []
    return [
        _checked_line(raw, f"{anchor_path()}, line {number}")
        for number, raw in enumerate(text.splitlines(), start=1)
        if raw.strip()
    ]


@dataclass
class _Walk:
    checked: int = 0
    bad_seq: int | None = None
    problem: str = ""
    # The last event that fitted (the genesis, or where the walk started, if none).
    last_seq: int = 0
    last_hash: str = GENESIS_HASH


def _walk(
    *, after_seq=0, after_hash=GENESIS_HASH, keyed=False, legacy_through=None, seen_by_anchor=None, batch_size=2000
):
    """Check every event after `after_seq` in seq order, each against the one before."""
    walk = _Walk(last_seq=after_seq, last_hash=after_hash)
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


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the whole chain in seq order; report the first event that does not
    fit, or the first event an anchor saw that is gone."""
    try:
        anchors = read_anchors()
    except AnchorError as exc:
        return ChainReport(False, 0, None, str(exc))
    seen_by_anchor = {anchor["seq"]: anchor for anchor in anchors}
    newest = max(anchors, key=lambda anchor: anchor["seq"], default=None)
    # The first anchor sealed the legacy prefix: no unkeyed event beyond it.
    legacy_through = anchors[0]["legacy_through"] if anchors else None
    anchored = {"anchored_seq": newest["seq"], "anchored_at": newest["at"]} if newest else {}

    walk = _walk(legacy_through=legacy_through, seen_by_anchor=seen_by_anchor, batch_size=batch_size)
    if walk.bad_seq is not None:
        return ChainReport(False, walk.checked, walk.bad_seq, walk.problem, **anchored)
    if newest is not None and newest["seq"] > walk.last_seq:
        missing = walk.last_seq + 1
        return ChainReport(
            False,
            walk.checked,
            missing,
            f"events from seq {missing} are missing: the anchor of {newest['at']} saw the chain up to "
            f"seq {newest['seq']}",
            **anchored,
        )
    return ChainReport(True, walk.checked, None, **anchored)


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


def _last_anchor() -> dict | None:
    """The file's last line, read from its end (the file only grows), checked."""
    try:
        with anchor_path().open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 8192))
            tail = [raw for raw in handle.read().splitlines() if raw.strip()]
    except FileNotFoundError:
        return None
    return _checked_line(tail[-1], f"the last line of {anchor_path()}") if tail else None


def anchor_chain() -> dict | None:
    """Write the chain's head down outside the database, if it moved since the
    last anchor, and send it to the webhook and syslog when set. Returns the line.

    An anchor vouches only for what verifies: the events since the last anchor
    (all of them, the first time) are checked first, and AnchorRefused is
    raised, with nothing written, if one does not fit."""
    try:
        last = _last_anchor()
    except AnchorError as exc:
        raise AnchorRefused(str(exc)) from None
    if last is None:
        walk = _walk()
        first_keyed = AuditEvent.objects.exclude(key_id="").order_by("seq").values_list("seq", flat=True).first()
    else:
        start = AuditEvent.objects.filter(seq=last["seq"]).values_list("hash", "key_id").first()
        if start is None or start[0] != last["hash"]:
            raise AnchorRefused(f"seq {last['seq']}: not the event the last anchor ({last['at']}) saw")
        walk = _walk(
            after_seq=last["seq"], after_hash=last["hash"], keyed=bool(start[1]), legacy_through=last["legacy_through"]
        )
    if walk.bad_seq is not None:
        raise AnchorRefused(f"seq {walk.bad_seq}: {walk.problem}")
    if walk.last_seq == 0 or (last and walk.last_seq == last["seq"]):
        return None  # nothing written yet, or nothing new
    if last is not None:
        legacy_through = last["legacy_through"]
    else:
        # The first anchor seals the unkeyed prefix (events from before the key).
        legacy_through = first_keyed - 1 if first_keyed is not None else walk.last_seq
    key_id, secret = _keys()[0]
    line = {
        "at": timezone.now().astimezone(UTC).isoformat(),
        "seq": walk.last_seq,
        "hash": walk.last_hash,
        "legacy_through": legacy_through,
        "key_id": key_id,
    }
    line["mac"] = _anchor_mac(line, secret)
    _append_line(anchor_path(), _canonical(line) + b"\n")
    if settings.AUDIT_ANCHOR_WEBHOOK_URL:
        _post(line)
    if settings.AUDIT_ANCHOR_SYSLOG:
        _to_syslog(line)
    return line


def _append_line(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # mkdir's mode is cut by the umask, and an existing folder keeps its own
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        # One write of one short line to an O_APPEND file: never interleaved.
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _post(line: dict) -> None:
    # A copy the dashboard's own hosts cannot take back. Best effort: the file
    # is the anchor of record, and the next round sends the newer head anyway.
    try:
        httpx.post(settings.AUDIT_ANCHOR_WEBHOOK_URL, json=line, timeout=settings.WEBHOOK_TIMEOUT).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("audit anchor not delivered to AUDIT_ANCHOR_WEBHOOK_URL: %s", exc)


def _to_syslog(line: dict) -> None:
    # Best effort too; a syslog host that keeps what it receives apart from
    # the dashboard gives the same second copy as the webhook.
    address = settings.AUDIT_ANCHOR_SYSLOG
    if not address.startswith("/"):
        host, _, port = address.rpartition(":")
        address = (host, int(port))
    try:
        handler = logging.handlers.SysLogHandler(address=address, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    except OSError as exc:
        logger.warning("audit anchor not sent to AUDIT_ANCHOR_SYSLOG: %s", exc)
        return
    try:
        message = "triton-dashboard audit anchor %s"
        args = (_canonical(line).decode(),)
        handler.emit(logging.LogRecord("audit-anchor", logging.INFO, __file__, 0, message, args, None))
    finally:
        handler.close()
