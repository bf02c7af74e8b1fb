"""Start, find and stop local server processes so that they outlive the worker
that started them, are never started twice, and are told apart from a
recycled pid by their start time."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ProcessRecord:
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: distinguishes a reused pid

    def as_dict(self) -> dict:
        return asdict(self)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(record: ProcessRecord | None) -> bool:
    if record is None:
        return False
    fields = _stat_fields(record.pid)
    return bool(fields) and fields[0] != "Z" and int(fields[19]) == record.start_ticks


def spawn(command: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> ProcessRecord:
    """Start `command` detached: bash (dash cannot name file descriptors above 9) backgrounds it in a new session and
    exits at once, so init adopts it (no zombie left in the worker, and it
    outlives the worker). Its output goes to `log`; its pid comes back on a pipe."""
    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        # The server must not inherit the pipe, or reading it would wait for the server to exit.
        script = f'exec </dev/null >>"$1" 2>&1; shift; "$@" {write_end}>&- & echo $! >&{write_end}'
        subprocess.run(  # noqa: S603 - fixed shell script; the command is passed as arguments, never parsed
            ["/bin/bash", "-c", script, "bash", str(log), *command],
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=(write_end,),
            check=True,
            timeout=30,
        )
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "r") as pipe:
            read_end = -1
            pid = int(pipe.read().strip())
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    ticks = start_ticks(pid)
    if ticks is None:
        raise OSError(f"the process exited at once; see {log}")
    return ProcessRecord(pid=pid, start_ticks=ticks)


def processes_mentioning(marker: str) -> list[ProcessRecord]:
    """Live processes whose command line contains `marker` (a workdir path):
    how a server started by a worker that died before recording it is found."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in cmdline:
            ticks = start_ticks(int(entry.name))
            if ticks is not None:
                found.append(ProcessRecord(int(entry.name), ticks))
    return found


def descendants(records: list[ProcessRecord]) -> list[ProcessRecord]:
    """Every live process below `records`, children first found first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [r.pid for r in records if is_running(r)]
    while queue:
        for pid in children.get(queue.pop(), []):
            ticks = start_ticks(pid)
            if ticks is not None:
                found.append(ProcessRecord(pid, ticks))
                queue.append(pid)
    return found


def stop(record: ProcessRecord, *, grace: float) -> None:
    """TERM, then KILL after `grace` seconds."""
    if not is_running(record):
        return
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_running(record):
            return
        time.sleep(0.1)
    try:
        os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while is_running(record):
        time.sleep(0.05)


def stop_all(records: list[ProcessRecord], *, grace: float) -> None:
    """TERM to all at once (a sandbox's servers stop side by side), then KILL
    what is left after `grace` seconds."""
    for record in records:
        if is_running(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_running(r) for r in records):
        time.sleep(0.1)
    for record in records:
        if is_running(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
    while any(is_running(r) for r in records):
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
