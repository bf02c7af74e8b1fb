"""Unpack an uploaded .zip / .tar.gz into a fresh directory, refusing anything unsafe.

Every entry is checked before a byte is written: no absolute paths or `..`,
no links or device files, no duplicates, UTF-8 names only, a bounded number
of entries, a bounded total size and compression ratio (enforced on the
bytes actually written, since archives can lie about sizes). Files are
created with O_EXCL | O_NOFOLLOW under the destination only.
"""

import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from deployments.model_repository.errors import IntakeError
from deployments.model_repository.limits import IntakeLimits

_COPY_CHUNK = 1024 * 1024
# Below this many unpacked bytes a high ratio is harmless (a small config or a
# sparse test model compresses 1000:1); bombs are about size, not ratio.
_RATIO_FLOOR = 16 * 1024 * 1024
# Metadata that macOS Finder adds to every zip it makes; never part of a model.
_IGNORED_PARTS = {"__MACOSX", ".DS_Store"}
# Linux's NAME_MAX, and a bound on a whole relative path far below PATH_MAX
# (it is unpacked under the storage root, whose own path counts too).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


@dataclass
class _Entry:
    name: str
    is_dir: bool
    open: object  # () -> BinaryIO, for files


def detect_format(handle: BinaryIO) -> str:
    head = handle.read(4)
    handle.seek(0)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    raise IntakeError("not a .zip, .tar.gz or .tgz archive (its first bytes match none of them)")


def _safe_relative(raw: str, entry: str) -> PurePosixPath | None:
    """The entry's path as clean relative parts, or None for ignored metadata."""
    if "\\" in raw:
        raise IntakeError("backslash in the name (archive made on Windows with non-standard paths?)", entry)
    if "\x00" in raw or any(ord(ch) < 32 for ch in raw):
        raise IntakeError("control character in the name", entry)
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise IntakeError("absolute path", entry)
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise IntakeError("path goes outside the archive ('..')", entry)
    check_name_lengths(parts, entry)
    if not parts:
        return None
    if parts[0] in _IGNORED_PARTS or parts[-1] in _IGNORED_PARTS or parts[-1].startswith("._"):
        return None
    return PurePosixPath(*parts)


def check_name_lengths(parts: list[str], entry: str) -> None:
    """What the file system would refuse with ENAMETOOLONG, refused first by name."""
    for part in parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise IntakeError(
                f"name too long ({len(part.encode())} bytes; a file or folder name takes at most {MAX_NAME_BYTES})",
                entry[:300],
            )
    length = len("/".join(parts).encode())
    if length > MAX_PATH_BYTES:
        raise IntakeError(f"path too long ({length} bytes; at most {MAX_PATH_BYTES})", entry[:300])


def _zip_entries(handle: BinaryIO, limits: IntakeLimits) -> Iterator[_Entry]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IntakeError(f"unreadable zip archive ({exc})") from None
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise IntakeError(f"too many entries ({len(infos)}; the limit is {limits.max_entries})")
    for info in infos:
        name = info.filename
        if not info.flag_bits & 0x800 and any(ord(ch) > 127 for ch in name):
            # Without the UTF-8 flag, zipfile decoded the name as CP437: the
            # bytes were some other encoding that cannot be trusted.
            raise IntakeError("file name is not UTF-8", name.encode("cp437", "replace").decode("ascii", "replace"))
        # Unix mode in the high bits; zips made elsewhere leave the type bits 0.
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise IntakeError("symbolic links are not allowed", name)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise IntakeError("only regular files and directories are allowed", name)
        if info.file_size > _RATIO_FLOOR and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
            raise IntakeError(
                f"compression ratio {info.file_size // max(info.compress_size, 1)}:1 exceeds {limits.max_ratio}:1"
                " (a zip bomb?)",
                name,
            )
        yield _Entry(name, info.is_dir(), lambda info=info: archive.open(info))


def _tar_entries(handle: BinaryIO, limits: IntakeLimits) -> Iterator[_Entry]:
    try:
        # Stream mode: members are read one by one, never all listed in memory first.
        archive = tarfile.open(fileobj=handle, mode="r|gz", errors="surrogateescape")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntakeError(f"unreadable .tar.gz archive ({exc})") from None
    count = 0
    try:
        for member in archive:
            count += 1
            if count > limits.max_entries:
                raise IntakeError(f"too many entries (more than {limits.max_entries})")
            name = member.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise IntakeError(
                    "file name is not UTF-8", name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                ) from None
            if member.issym() or member.islnk():
                kind = "symbolic" if member.issym() else "hard"
                raise IntakeError(f"{kind} links are not allowed (it points to {member.linkname!r})", name)
            if not (member.isfile() or member.isdir()):
                raise IntakeError("only regular files and directories are allowed (device, FIFO?)", name)
            yield _Entry(name, member.isdir(), lambda member=member: archive.extractfile(member))
    except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise IntakeError(f"unreadable .tar.gz archive ({exc})") from None
    finally:
        archive.close()


@dataclass(frozen=True)
class UnpackResult:
    files: int
    total_bytes: int
    ignored: int


def unpack(handle: BinaryIO, destination: Path, limits: IntakeLimits) -> UnpackResult:
    """Unpack into `destination` (an existing empty directory)."""
    kind = detect_format(handle)
    handle.seek(0, os.SEEK_END)
    archive_size = max(handle.tell(), 1)
    handle.seek(0)
    entries = _zip_entries(handle, limits) if kind == "zip" else _tar_entries(handle, limits)
    destination = destination.resolve()
    seen: dict[PurePosixPath, bool] = {}
    files = total = ignored = 0
    for entry in entries:
        relative = _safe_relative(entry.name, entry.name)
        if relative is None:
            ignored += 1
            continue
        if relative in seen:
            raise IntakeError("appears twice in the archive", entry.name)
        for parent in relative.parents:
            if parent != PurePosixPath(".") and seen.get(parent) is False:
                raise IntakeError(f"'{parent}' is a file, yet this entry lies inside it", entry.name)
        seen[relative] = entry.is_dir
        target = destination.joinpath(*relative.parts)
        if not target.resolve().is_relative_to(destination):
            raise IntakeError("path goes outside the archive", entry.name)
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target.exists():
            raise IntakeError(f"'{relative}' is a directory in this archive, yet also a file", entry.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        total = _copy_bounded(entry, target, total, archive_size, limits)
        files += 1
    if files == 0:
        raise IntakeError("the archive is empty (no files)")
    return UnpackResult(files=files, total_bytes=total, ignored=ignored)


def _read(source, entry: _Entry) -> bytes:
    try:
        return source.read(_COPY_CHUNK)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        # zipfile checks each entry's CRC-32 as it reaches the entry's end.
        raise IntakeError(f"corrupt data ({exc})", entry.name) from None


def _copy_bounded(entry: _Entry, target: Path, total: int, archive_size: int, limits: IntakeLimits) -> int:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out, entry.open() as source:
        while chunk := _read(source, entry):
            total += len(chunk)
            if total > limits.max_total_bytes:
                raise IntakeError(f"unpacks to more than the {limits.max_total_bytes:,} bytes allowed", entry.name)
            if total > _RATIO_FLOOR and total / archive_size > limits.max_ratio:
                raise IntakeError(
                    f"unpacks to more than {limits.max_ratio} times the archive's size (a compression bomb?)",
                    entry.name,
                )
            out.write(chunk)
    return total
