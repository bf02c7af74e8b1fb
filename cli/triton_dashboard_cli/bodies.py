"""The JSON bodies the CLI sends, built in one place so that a test can
check each against the dashboard's OpenAPI document."""

import io
import tarfile
from pathlib import Path


def deployment_body(*, name, repository, target, mode=None, worker_count=None, auth_enabled=None) -> dict:
    body = {"name": name, "repository": _id_or_name(repository), "target": _id_or_name(target)}
    return {**body, **_spec(mode=mode, worker_count=worker_count, auth_enabled=auth_enabled)}


def redeploy_body(
    *, repository=None, confirm_other_line=False, mode=None, worker_count=None, auth_enabled=None
) -> dict:
    """Only what is given: a field left out keeps the deployment's own."""
    body = _spec(mode=mode, worker_count=worker_count, auth_enabled=auth_enabled)
    if repository is not None:
        # A digit string is a revision's id; anything else a line's name (its latest revision).
        body["repository"] = _id_or_name(repository)
    if confirm_other_line:
        body["confirm_other_line"] = True
    return body


def promotion_body(*, environment, target=None, into=None, name="", force=False) -> dict:
    body = {"environment": _id_or_name(environment)}
    if target is not None:
        body["target"] = _id_or_name(target)
    if into is not None:
        # The API's `deployment`: the destination to update (an id only).
        body["deployment"] = into
    if name:
        body["name"] = name
    if force:
        body["force"] = True
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


def _spec(*, mode, worker_count, auth_enabled) -> dict:
    """The spec fields given on the command line (None: not given)."""
    given = {"mode": mode, "worker_count": worker_count, "auth_enabled": auth_enabled}
    return {key: value for key, value in given.items() if value is not None}


def _id_or_name(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def steps_body(text: str) -> list[dict]:
    """A rollout's steps as typed on the command line: TRAFFIC:SECONDS,
    comma-separated (10:300,50:300,100:300). Whether they make a plan (grow,
    end at 100, bake long enough) is the dashboard's to say."""
    steps = []
    for part in text.split(","):
        traffic, colon, bake = (piece.strip() for piece in part.partition(":"))
        if not colon or not traffic.isdigit() or not bake.isdigit():
            raise ValueError(f"{part.strip()!r} is not TRAFFIC:SECONDS")
        steps.append({"traffic": int(traffic), "bake_seconds": int(bake)})
    return steps


def rollout_body(
    *,
    steps: list[dict],
    repository=None,
    confirm_other_line=False,
    mode=None,
    worker_count=None,
    auth_enabled=None,
    gates=None,
    golden_requests=None,
    on_rollback=None,
) -> dict:
    """The candidate is the deployment's spec with what is given changed, as
    for a redeploy; gates, golden requests and on_rollback left out take the
    dashboard's defaults."""
    body = {"steps": steps}
    spec = redeploy_body(
        repository=repository,
        confirm_other_line=confirm_other_line,
        mode=mode,
        worker_count=worker_count,
        auth_enabled=auth_enabled,
    )
    if spec:
        body["spec"] = spec
    given = {"gates": gates, "golden_requests": golden_requests, "on_rollback": on_rollback}
    return {**body, **{key: value for key, value in given.items() if value is not None}}


def abort_body(reason: str) -> dict:
    return {"reason": reason}


def migration_body(*, target, name="", repository=None, golden_requests=None) -> dict:
    body = {"target": _id_or_name(target)}
    if name:
        body["name"] = name
    if repository is not None:
        body["repository"] = _id_or_name(repository)
    if golden_requests is not None:
        body["golden_requests"] = golden_requests
    return body


def counts(text: str) -> list[int]:
    """ "1,2,4,8" -> [1, 2, 4, 8]."""
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of whole numbers, e.g. 1,2,4,8") from None
    if not values:
        raise ValueError("give at least one concurrency, e.g. 1,2,4,8")
    return values


def load_test_body(
    *, model, concurrency, version=None, window_seconds=None, max_requests=None, max_seconds=None, inputs=None, label=""
) -> dict:
    """Only what is given: the dashboard's defaults and bounds apply to the rest."""
    body = {"model": model, "concurrency": concurrency, "label": label}
    given = {
        "version": version,
        "window_seconds": window_seconds,
        "max_requests": max_requests,
        "max_seconds": max_seconds,
        "inputs": inputs,
    }
    return {**body, **{key: value for key, value in given.items() if value is not None}}
