"""Where the model repository lies inside what was unpacked, and its identity.

Accepted layouts: a bare Triton repository (`<model>/<version>/<file>`), the
same wrapped in one top folder, and Azure ML's guide layout
(`models/triton/<model>/...`: the `triton` folder is the repository).
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_VERSION = re.compile(r"^[0-9]+$")
_MAX_WRAPPER_DEPTH = 4


def looks_like_model_dir(path: Path) -> bool:
    if (path / "config.pbtxt").is_file():
        return True
    return any(child.is_dir() and _VERSION.match(child.name) for child in path.iterdir())


def find_repository_root(unpacked: Path) -> Path:
    """The directory whose children are the models."""
    for candidate in (unpacked / "models" / "triton", unpacked / "triton"):
        if candidate.is_dir():
            return candidate
    root = unpacked
    for _ in range(_MAX_WRAPPER_DEPTH):
        children = [child for child in root.iterdir()]
        if len(children) != 1 or not children[0].is_dir() or looks_like_model_dir(children[0]):
            break
        nested = children[0]
        for candidate in (nested / "models" / "triton", nested / "triton"):
            if candidate.is_dir():
                return candidate
        root = nested
    return root


def iter_tree(root: Path):
    """(relative posix path, path) of every file and directory, sorted, no links followed."""
    entries = []
    for path in root.rglob("*"):
        entries.append((path.relative_to(root).as_posix(), path))
    entries.sort()
    return entries


def content_digest(root: Path) -> str:
    """SHA-256 over the normalised tree: each file's path and content hash, each
    directory's path, in sorted order. Archive format, timestamps, owners and
    entry order do not count; a renamed or edited file does."""
    manifest = hashlib.sha256()
    for relative, path in iter_tree(root):
        if path.is_dir():
            manifest.update(f"d {relative}\n".encode())
            continue
        file_hash = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                file_hash.update(chunk)
        manifest.update(f"f {relative} {file_hash.hexdigest()}\n".encode())
    return manifest.hexdigest()


@dataclass(frozen=True)
class TreeEntry:
    path: str
    depth: int
    name: str
    is_dir: bool
    size: int


def file_tree(root: Path) -> list[TreeEntry]:
    return [
        TreeEntry(
            path=relative,
            depth=relative.count("/"),
            name=path.name,
            is_dir=path.is_dir(),
            size=0 if path.is_dir() else path.stat().st_size,
        )
        for relative, path in iter_tree(root)
    ]
