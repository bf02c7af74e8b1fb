"""Bring a repository in: unpack or copy into a private staging folder under
STORAGE_ROOT, find the repository in it, validate, then move it into place
with one rename. A rejected input leaves nothing behind."""

import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings

from deployments.model_repository import archive, layout
from deployments.model_repository.errors import IntakeError
from deployments.model_repository.limits import IntakeLimits
from deployments.model_repository.validation import ValidationReport, validate_repository


def storage_dir(*parts: str) -> Path:
    path = Path(settings.STORAGE_ROOT).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class StagedRepository:
    """A validated repository in staging, not yet in its final place."""

    staging: Path
    root: Path
    found_at: str  # where the repository was inside the input, e.g. "models/triton"
    digest: str
    report: ValidationReport
    file_count: int
    total_bytes: int
    ignored_entries: int

    @property
    def final_relative(self) -> str:
        return f"repositories/{self.digest}"

    def install(self) -> bool:
        """Move into STORAGE_ROOT/repositories/<digest>; False when identical
        content is already there (then nothing changes)."""
        final = Path(settings.STORAGE_ROOT) / self.final_relative
        storage_dir("repositories")
        try:
            os.rename(self.root, final)
            installed = True
        except OSError:
            if not final.is_dir():
                raise
            installed = False
        self.discard()
        return installed

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _stage(fill, limits: IntakeLimits) -> StagedRepository:
    # Staging lives on the same file system as the final place, so the move
    # is one atomic rename; its random name keeps concurrent intakes apart.
    staging = Path(tempfile.mkdtemp(prefix="intake-", dir=storage_dir("staging")))
    try:
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        files, total, ignored = fill(unpacked)
        root = layout.find_repository_root(unpacked)
        report = validate_repository(root, limits)
        return StagedRepository(
            staging=staging,
            root=root,
            found_at=root.relative_to(unpacked).as_posix() if root != unpacked else "",
            digest=layout.content_digest(root),
            report=report,
            file_count=files,
            total_bytes=total,
            ignored_entries=ignored,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def stage_archive(handle: BinaryIO, limits: IntakeLimits | None = None) -> StagedRepository:
    limits = limits or IntakeLimits.from_settings()

    def fill(unpacked: Path):
        result = archive.unpack(handle, unpacked, limits)
        return result.files, result.total_bytes, result.ignored

    return _stage(fill, limits)


def resolve_import_path(raw: str) -> Path:
    """The real path of a server directory, if it lies under an allowed import root."""
    roots = [Path(root).resolve() for root in settings.REPOSITORY_IMPORT_ROOTS]
    if not roots:
        raise IntakeError("importing from a server path is turned off (REPOSITORY_IMPORT_ROOTS is empty)")
    if not raw or "\x00" in raw:
        raise IntakeError("give the directory's absolute path")
    path = Path(raw)
    if not path.is_absolute():
        raise IntakeError("give the directory's absolute path", raw[:300])
    # Refused by name before the file system refuses it with ENAMETOOLONG.
    archive.check_name_lengths(list(path.parts[1:]), raw[:300])
    resolved = path.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise IntakeError(f"not under an allowed import root ({allowed})", raw)
    if not resolved.is_dir():
        raise IntakeError("no such directory", raw)
    return resolved


def stage_directory(source: Path, limits: IntakeLimits | None = None) -> StagedRepository:
    """Copy a server directory (already checked by resolve_import_path)."""
    limits = limits or IntakeLimits.from_settings()

    def fill(unpacked: Path):
        files = total = entries = 0
        for current, dirnames, filenames in os.walk(source, followlinks=False):
            current_path = Path(current)
            relative_dir = PurePosixPath(current_path.relative_to(source).as_posix())
            for name in sorted(dirnames + filenames):
                entries += 1
                if entries > limits.max_entries:
                    raise IntakeError(f"too many entries (more than {limits.max_entries})")
                relative = (relative_dir / name).as_posix().removeprefix("./")
                info = (current_path / name).lstat()
                if stat.S_ISLNK(info.st_mode):
                    raise IntakeError("symbolic links are not allowed", relative)
                if stat.S_ISDIR(info.st_mode):
                    (unpacked / relative).mkdir(parents=True, exist_ok=True)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    raise IntakeError("only regular files and directories are allowed", relative)
                total += info.st_size
                if total > limits.max_total_bytes:
                    raise IntakeError(f"more than the {limits.max_total_bytes:,} bytes allowed", relative)
                target = unpacked / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(current_path / name, target, follow_symlinks=False)
                files += 1
        if files == 0:
            raise IntakeError("the directory has no files", str(source))
        return files, total, 0

    return _stage(fill, limits)


def remove_installed(relative: str) -> None:
    """Delete a stored repository's files (after its row is gone)."""
    root = Path(settings.STORAGE_ROOT).resolve()
    target = (root / relative).resolve()
    if target != root and target.is_relative_to(root / "repositories"):
        # Rename first so a half-finished delete never looks like a repository.
        doomed = target.with_name(f".deleting-{uuid.uuid4().hex}")
        try:
            os.rename(target, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
