"""The JSON bodies the CLI sends, built in one place so that a test can
check each against the dashboard's OpenAPI document."""

import io
import tarfile
from pathlib import Path


def deployment_body(*, name, repository, target, mode=None, worker_count=None, auth_enabled=None) -> dict:
    body = {"name": name, "repository": _id_or_name(repository), "target": _id_or_name(target)}
    if mode is not None:
        body["mode"] = mode
    if worker_count is not None:
        body["worker_count"] = worker_count
    if auth_enabled is not None:
        body["auth_enabled"] = auth_enabled
    return body


def traffic_body(shares: tuple[str, ...]) -> dict:
    """name=percent pairs, as typed on the command line."""
    traffic = {}
    for share in shares:
        name, equals, percent = share.partition("=")
        if not equals or not percent.strip().isdigit():
            raise ValueError(f"{share!r} is not NAME=PERCENT")
        traffic[name.strip()] = int(percent)
    return {"traffic": traffic}


def comment_body(comment: str) -> dict:
    return {"comment": comment}


def archive(path: Path) -> tuple[str, bytes]:
    """An archive as it is, or a directory packed as .tar.gz in memory (the
    dashboard records archives; a directory on this machine is not one of
    its server paths)."""
    if path.is_file():
        return path.name, path.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in sorted(path.rglob("*")):
            if member.is_file():
                tar.add(member, arcname=str(member.relative_to(path)), recursive=False)
    return f"{path.resolve().name}.tar.gz", buffer.getvalue()


def _id_or_name(value: str) -> int | str:
    return int(value) if value.isdigit() else value
