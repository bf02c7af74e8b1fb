"""The local target's files: records written whole or not at all, and the
tail of a server's log."""

from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Readable by this user only (records hold encrypted keys, the router's
    configuration key digests); a reader never sees half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.chmod(0o600)
    partial.replace(path)


def tail(path: Path, count: int) -> list[str]:
    """The last `count` lines, read from the end (logs grow without bound)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 256 * 1024))
            return handle.read().decode("utf-8", "replace").splitlines()[-count:]
    except FileNotFoundError:
        return []
