"""The chain's head written down outside the database: an owner-only,
append-only file of signed JSON lines (and optionally a webhook and syslog),
so that events an anchor saw cannot vanish unnoticed. The first line also
seals the legacy prefix (how far the unkeyed events go)."""

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
from datetime import UTC
from pathlib import Path

import httpx
from django.conf import settings
from django.utils import timezone

from deployments.audit.chain import walk_chain
from deployments.audit.signing import UnknownAuditKey, canonical, keys, secret_of
from deployments.models import AuditEvent

logger = logging.getLogger(__name__)

ANCHOR_FILE = "anchors.jsonl"
# Domain separation: an anchor's MAC can never pass for an event's, or back.
_ANCHOR_CONTEXT = b"triton-dashboard audit anchor\n"


class AnchorError(Exception):
    """The anchor file cannot be trusted (malformed, or a line not signed by any key)."""


def anchor_path() -> Path:
    return Path(settings.AUDIT_ANCHOR_DIR) / ANCHOR_FILE


def _anchor_mac(line: dict, secret: bytes) -> str:
    fields = {key: value for key, value in line.items() if key != "mac"}
    return hmac.new(secret, _ANCHOR_CONTEXT + canonical(fields), hashlib.sha256).hexdigest()


class AnchorRefused(Exception):
    """The chain since the last anchor does not verify: no new anchor vouches for it."""


def _checked_line(raw: str | bytes, where: str) -> dict:
    """One anchor line, its MAC checked under the key it names. Raises AnchorError."""
    try:
        line = json.loads(raw)
        seq, digest, legacy_through = int(line["seq"]), str(line["hash"]), int(line["legacy_through"])
        secret = secret_of(str(line["key_id"]))
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
        walk = walk_chain()
        first_keyed = AuditEvent.objects.exclude(key_id="").order_by("seq").values_list("seq", flat=True).first()
    else:
        start = AuditEvent.objects.filter(seq=last["seq"]).values_list("hash", "key_id").first()
        if start is None or start[0] != last["hash"]:
            raise AnchorRefused(f"seq {last['seq']}: not the event the last anchor ({last['at']}) saw")
        walk = walk_chain(
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
    key_id, secret = keys()[0]
    line = {
        "at": timezone.now().astimezone(UTC).isoformat(),
        "seq": walk.last_seq,
        "hash": walk.last_hash,
        "legacy_through": legacy_through,
        "key_id": key_id,
    }
    line["mac"] = _anchor_mac(line, secret)
    _append_line(anchor_path(), canonical(line) + b"\n")
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
        args = (canonical(line).decode(),)
        handler.emit(logging.LogRecord("audit-anchor", logging.INFO, __file__, 0, message, args, None))
    finally:
        handler.close()
