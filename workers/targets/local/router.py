"""The local target's endpoints: one HAProxy (Debian's package) per storage
root serves every local deployment's stable address, on a port of its own.

Why HAProxy: weighted round robin (a 90/10 split is exact, not a coin toss),
header ACLs (`azureml-model-deployment`), a key check on the SHA-256 of the
Authorization header (so no key is ever written in clear), and a reload that
hands its listening sockets to the new process and lets the old one finish
what it serves (`option idle-close-on-response` answers one more request on an
idle keep-alive connection, with `Connection: close`): a config change drops
no request. Its configuration is rendered from the endpoint records
(endpoints.py), so the files, not a process's memory, say what is served.

Who keeps it running: every local operation that changes what is served
publishes the records (endpoints.publish -> apply: start, or reload when the
configuration changed), and every status check of a local deployment (the
reconciler's round) starts it again from the records when it is not running
(after a reboot, a crash, a `kill`). It runs detached, so it outlives `make
run` and the worker, as the Tritons do; the next start finds it by its pid
record and keeps it.
"""

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workers.targets.base import TargetError
from workers.targets.local import processes as local_processes
from workers.targets.local.files import tail, write_atomically

_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Route:
    """One Triton deployment behind an endpoint: `triton` serves /v2 and
    `front` everything else (the entry server in entry-script mode, else the
    same Triton); both are HAProxy server addresses (`unix@/path` or `host:port`)."""

    name: str
    weight: int
    triton: str
    front: str


@dataclass(frozen=True)
class Endpoint:
    id: int
    port: int
    # SHA-256 hex digests of the accepted "Bearer <key>" header values; empty: open.
    key_digests: tuple[str, ...]
    routes: tuple[Route, ...]


def key_digest(key: str) -> str:
    return hashlib.sha256(f"Bearer {key}".encode()).hexdigest()


def root() -> Path:
    return Path(settings.STORAGE_ROOT) / "endpoints"


def _config_path() -> Path:
    return root() / "haproxy.cfg"


def _master_socket() -> Path:
    return root() / "master.sock"


def _record_path() -> Path:
    return root() / "router.json"


# --- configuration -------------------------------------------------------------


def render(endpoints: list[Endpoint]) -> str:
    drain = settings.LOCAL_ENDPOINT_DRAIN_SECONDS
    lines = [
        "# Written by Triton Dashboard from the endpoint records; edits are overwritten.",
        "global",
        "  master-worker",
        # An old process serves what it had for at most this long after a reload.
        f"  hard-stop-after {drain}s",
        # 256 KiB buffers instead of 16: a 4 MB tensor then crosses in a few
        # dozen reads and writes, not hundreds (bench/local_endpoint.py).
        "  tune.bufsize 262144",
        "defaults",
        "  mode http",
        "  option idle-close-on-response",
        "  timeout connect 3s",
        "  timeout client 300s",
        "  timeout server 300s",
        "  timeout http-keep-alive 10s",
        "  timeout http-request 30s",
    ]
    for endpoint in sorted(endpoints, key=lambda e: e.id):
        lines += _frontend(endpoint)
        lines += _backends(endpoint)
    return "\n".join(lines) + "\n"


def _json(error: str) -> str:
    """An error body as Triton's own (`{"error": ...}`), so tritonclient shows it."""
    return "content-type application/json string '" + json.dumps({"error": error}) + "'"


def _frontend(endpoint: Endpoint) -> list[str]:
    name = f"ep{endpoint.id}"
    lines = ["", f"frontend {name}", f"  bind {settings.LOCAL_ENDPOINT_ADDRESS}:{endpoint.port}"]
    if endpoint.key_digests:
        lines.append(
            f"  http-request return status 401 {_json('this endpoint wants Authorization: Bearer <key>')} "
            f"unless {{ req.hdr(authorization),digest(sha256),hex,lower -m str {' '.join(endpoint.key_digests)} }}"
        )
    lines.append("  acl v2 path_beg /v2/")
    lines.append("  acl named req.hdr(azureml-model-deployment) -m found")
    names = " ".join(route.name for route in endpoint.routes)
    known = f" !{{ req.hdr(azureml-model-deployment) -m str {names} }}" if names else ""
    lines.append(
        f"  http-request return status 404 {_json('no deployment of that name (azureml-model-deployment) here')} "
        f"if named{known}"
    )
    for route in endpoint.routes:
        header = f"{{ req.hdr(azureml-model-deployment) -m str {route.name} }}"
        lines.append(f"  use_backend {name}_{route.name}_v2 if v2 {header}")
        lines.append(f"  use_backend {name}_{route.name} if {header}")
    lines.append(f"  use_backend {name}_v2 if v2")
    lines.append(f"  default_backend {name}")
    return lines


# As Azure does: the answer names the deployment that served it.
_SAY_WHO = "  http-response set-header azureml-model-deployment %[srv_name]"


def _backends(endpoint: Endpoint) -> list[str]:
    name = f"ep{endpoint.id}"
    lines = []
    for suffix, route_of in (("", lambda r: r.front), ("_v2", lambda r: r.triton)):

        def pick(route, route_of=route_of):
            return _short(route_of(route))

        lines += ["", f"backend {name}{suffix}", "  balance roundrobin", _SAY_WHO]
        lines += [f"  server {r.name} {pick(r)} weight {r.weight}" for r in endpoint.routes]
        for route in endpoint.routes:
            lines += ["", f"backend {name}_{route.name}{suffix}", _SAY_WHO, f"  server {route.name} {pick(route)}"]
    return lines


def _short(address: str) -> str:
    """A socket address as HAProxy can take it. A Unix socket's path may be
    at most 97 characters there, which a deep storage root exceeds; the
    router runs in root(), so the path relative to it is short whatever the
    root (../deployments/<id>/sandbox-<digest>/run/http.sock)."""
    if not address.startswith("unix@/"):
        return address
    relative = "unix@" + os.path.relpath(address.removeprefix("unix@"), root())
    return min(address, relative, key=len)


# --- the process ---------------------------------------------------------------


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One writer at a time: two workers reloading at once, or taking a port
    at once, would race (not re-entrant: never nest it)."""
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record() -> local_processes.ProcessRecord | None:
    try:
        data = json.loads(_record_path().read_text())
        return local_processes.ProcessRecord(data["pid"], data["start_ticks"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def running() -> bool:
    return local_processes.is_running(_record())


def apply(endpoints: list[Endpoint]) -> bool:
    """Serve exactly `endpoints`: start the router, or reload it when its
    configuration changed. True when a running router was reloaded (its old
    process may still be finishing requests: see `wait_drained`)."""
    with locked():
        text = render(endpoints)
        current = _config_path().read_text() if _config_path().exists() else None
        if running() and current == text:
            return False
        _check(text)
        write_atomically(_config_path(), text)
        if running():
            _reload()
            return True
        _start()
        return False


def _check(text: str) -> None:
    """A configuration HAProxy refuses is never loaded: the running one stays."""
    candidate = root() / "haproxy.check.cfg"
    write_atomically(candidate, text)
    result = subprocess.run(  # noqa: S603 - fixed argv
        [haproxy(), "-c", "-f", str(candidate)], capture_output=True, text=True, timeout=30, cwd=root()
    )
    if result.returncode != 0:
        # Its ALERT lines say what is wrong (-q would silence them too).
        alerts = [line for line in (result.stdout + result.stderr).splitlines() if "[ALERT]" in line]
        problem = " | ".join(line.split(" : ", 1)[-1] for line in alerts)[-500:]
        raise TargetError(f"the endpoint router refused its configuration: {problem}", permanent=True)


def haproxy() -> str:
    """Debian's haproxy (it installs to /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin")
    if not found:
        raise TargetError(
            "the local target's endpoints need HAProxy, which is not installed here (apt-get install haproxy)",
            permanent=True,
        )
    return found


def _start() -> None:
    log = root() / "router.log"
    _master_socket().unlink(missing_ok=True)
    command = [haproxy(), "-W", "-S", f"{_master_socket()},mode,600", "-f", str(_config_path())]
    process = local_processes.spawn(command, env={"PATH": "/usr/sbin:/usr/bin:/bin"}, log=log, cwd=root())
    write_atomically(_record_path(), json.dumps(process.as_dict()))
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not local_processes.is_running(process):
            raise TargetError(f"the endpoint router did not start: {_log_tail(log)}", permanent=False)
        if _workers().current:
            return
        time.sleep(0.05)
    raise TargetError(f"the endpoint router did not start within {_START_TIMEOUT:.0f} s", permanent=False)


def _reload() -> None:
    before = _workers()
    with contextlib.suppress(OSError):
        _master("reload")
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        now = _workers()
        if now.current and now.current != before.current:
            return
        if now.failed > before.failed:
            break
        time.sleep(0.05)
    raise TargetError(f"the endpoint router did not reload: {_log_tail(root() / 'router.log')}", permanent=False)


@dataclass(frozen=True)
class _Workers:
    current: frozenset[int]
    old: frozenset[int]
    failed: int


def _master(command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(_master_socket()))
        sock.sendall(f"{command}\n".encode())
        sock.shutdown(socket.SHUT_WR)  # the master answers once it has read the whole input
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def responses(endpoint_id: int) -> dict[str, dict[str, int]]:
    """What the endpoint answered through each of its Triton deployments:
    {name: {"requests", "4xx", "5xx"}}, summed over the backends that reach
    it (the split, and the azureml-model-deployment header's). Counted by
    the router's current worker since it started: a reload starts again
    from zero. Triton's own counters miss failures it answers before a
    model runs (a wrong shape, a full queue: docs/facts.md); these do not."""
    text = _master("@1 show stat")
    header, _, body = text.lstrip("# ").partition("\n")
    found: dict[str, dict[str, int]] = {}
    prefix = f"ep{endpoint_id}"
    for row in csv.DictReader([header, *body.splitlines()]):
        backend = row.get("pxname", "")
        if row.get("svname") in ("FRONTEND", "BACKEND", None) or not (
            backend == prefix or backend.startswith(f"{prefix}_")
        ):
            continue
        counts = found.setdefault(row["svname"], {"requests": 0, "4xx": 0, "5xx": 0})
        for key, column in (("4xx", "hrsp_4xx"), ("5xx", "hrsp_5xx")):
            counts[key] += int(row.get(column) or 0)
        counts["requests"] += sum(int(row.get(f"hrsp_{c}xx") or 0) for c in "12345")
    return found


def _workers() -> _Workers:
    """From the master's `show proc`: its current and old (draining) workers."""
    try:
        text = _master("show proc")
    except OSError:
        return _Workers(frozenset(), frozenset(), 0)
    current, old, failed, section = set(), set(), 0, ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").split("<")[0].strip()
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        if fields[1] == "master" and "failed:" in line:
            failed = int(line.split("failed:")[1].split("]")[0])
        elif fields[1] == "worker":
            (old if section == "old workers" else current).add(int(fields[0]))
    return _Workers(frozenset(current), frozenset(old), failed)


def wait_drained() -> bool:
    """Until no old process still finishes requests of a previous
    configuration (HAProxy ends them after LOCAL_ENDPOINT_DRAIN_SECONDS at the
    latest). True when drained."""
    deadline = time.monotonic() + settings.LOCAL_ENDPOINT_DRAIN_SECONDS + 2
    while time.monotonic() < deadline:
        if not _workers().old:
            return True
        time.sleep(0.05)
    return False


def stop() -> None:
    """Stop the router of this storage root (its endpoints stop answering)."""
    with locked():
        record = _record()
        if record is not None:
            local_processes.stop(record, grace=5)
        _record_path().unlink(missing_ok=True)
        _config_path().unlink(missing_ok=True)


def free_port(taken: set[int]) -> int:
    """The lowest port of LOCAL_ENDPOINT_PORTS that no endpoint holds and
    nothing listens on now."""
    low, high = settings.LOCAL_ENDPOINT_PORTS
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((settings.LOCAL_ENDPOINT_ADDRESS, port))
            except OSError:
                continue
        return port
    raise TargetError(
        f"no free endpoint port left in LOCAL_ENDPOINT_PORTS ({low}-{high}): widen the range, or delete "
        "deployments that are no longer needed",
        permanent=True,
    )


def _log_tail(path: Path) -> str:
    return " | ".join(tail(path, 4)) or "(no log)"
