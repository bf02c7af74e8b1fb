"""`make run`'s stack keeps going when one of its processes dies: the worker,
the web server or beat, killed outright, comes back by itself, and the others
are left running."""

import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest

from tests import processes

# The real stack, waiting on real time.
pytestmark = pytest.mark.server

# Each process of the stack by what its command line says; the first of each
# (the parent of any pool or forked workers) is the one to kill.
ROLES = {
    "operations worker": ("celery", "worker", "operations@"),
    "web": ("gunicorn", "dashboard.wsgi"),
    "beat": ("celery", "beat"),
}


def main_pid(stack: subprocess.Popen, role: str) -> int | None:
    """The pid of the stack's process playing `role` (not its pool's children)."""
    words = ROLES[role]
    found = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or ())
        if all(word in line for word in words) and not line.startswith(("/bin/sh", "sh ")) and _in(stack, proc):
            found[proc.info["pid"]] = proc.info["ppid"]
    mains = [pid for pid, ppid in found.items() if ppid not in found]
    return mains[0] if len(mains) == 1 else None


def _in(stack: subprocess.Popen, proc: psutil.Process) -> bool:
    """Whether `proc` descends from the stack's own process."""
    try:
        return any(parent.pid == stack.pid for parent in proc.parents())
    except psutil.Error:
        return False


def last_seen(var_dir, hostname_prefix: str) -> datetime | None:
    """When the worker named `hostname_prefix`@… last recorded a heartbeat in the stack's database."""
    with sqlite3.connect(var_dir / "db.sqlite3", timeout=30) as db:
        row = db.execute(
            "SELECT max(last_seen) FROM deployments_workerheartbeat WHERE hostname LIKE ?", (f"{hostname_prefix}@%",)
        ).fetchone()
    return datetime.fromisoformat(row[0]).replace(tzinfo=UTC) if row and row[0] else None


def send_heartbeat_to(queue: str, env) -> None:
    """A heartbeat task on `queue`: whichever worker takes it records its own name."""
    code = f"from dashboard.celery import app; app.send_task('workers.heartbeat', queue={queue!r})"
    subprocess.run([sys.executable, "-c", code], cwd=processes.ROOT, env=env, check=True, timeout=120)


@pytest.fixture
def stack(tmp_path):
    var_dir = tmp_path / "var"
    env = processes.make_run_env(var_dir, WORKER_HEARTBEAT_INTERVAL="1")
    assert processes.manage("migrate", "--noinput", env=env).returncode == 0
    port = processes.free_port()
    assert processes.manage("bootstrap_demo", "--url", f"http://127.0.0.1:{port}/", env=env).returncode == 0
    process = processes.start_stack(port=port, env=env, log=tmp_path / "stack.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for(lambda: processes.healthy_with_a_worker(base), within=180, what="stack healthy")
        processes.wait_for(
            lambda: all(main_pid(process, role) for role in ROLES), within=60, what="every process of the stack"
        )
        yield process, base, env, var_dir
    finally:
        processes.stop(process, sig=signal.SIGINT, grace=30)
        print((tmp_path / "stack.log").read_text()[-8000:])


def test_a_killed_worker_web_server_or_beat_comes_back_by_itself_and_the_rest_keep_running(stack):
    process, base, env, var_dir = stack
    for role in ROLES:
        before = {name: main_pid(process, name) for name in ROLES}
        killed_at = datetime.now(UTC)
        psutil.Process(before[role]).send_signal(signal.SIGKILL)

        def replaced(role=role, before=before):
            pid = main_pid(process, role)
            return pid if pid and pid != before[role] else None

        # Bounds a hung run (a restart may wait out a back-off); not a speed assertion.
        processes.wait_for(replaced, within=120, what=f"a new {role}", process=process)
        assert process.poll() is None, f"the stack exited when its {role} was killed"
        others = {name: main_pid(process, name) for name in ROLES if name != role}
        assert others == {name: pid for name, pid in before.items() if name != role}, "another process restarted"

        # And the new one does its job.
        if role == "web":
            processes.wait_for(lambda: processes.healthy_with_a_worker(base), within=120, what="web answers again")
        elif role == "operations worker":
            send_heartbeat_to("operations", env)
            processes.wait_for(
                lambda killed_at=killed_at: (last_seen(var_dir, "operations") or killed_at) > killed_at,
                within=120,
                what="the new worker takes a task",
            )
        else:
            # Heartbeats are sent every second: one from the new beat, taken by the periodic worker.
            started = datetime.fromtimestamp(psutil.Process(replaced()).create_time(), UTC) + timedelta(seconds=2)
            processes.wait_for(
                lambda started=started: (last_seen(var_dir, "periodic") or started) > started,
                within=120,
                what="a heartbeat sent by the new beat",
            )
        time.sleep(1)
    assert httpx.get(f"{base}/api/v1/health", timeout=10).status_code == 200
