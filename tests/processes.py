"""Start real processes of the dashboard (Celery worker, the `make run` stack)
for tests, and stop them whatever happens."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for child processes."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(condition: Callable[[], object], *, within: float, what: str, process=None):
    """Poll until condition() is truthy. `within` bounds a hung run; it is not
    a speed assertion."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {within:.0f} s")


def healthy_with_a_worker(base: str) -> dict | None:
    """The dashboard at `base`'s health answer, once it is ok with a worker online."""
    import httpx

    try:
        body = httpx.get(f"{base}/api/v1/health", timeout=2).json()
    except httpx.HTTPError:
        return None
    return body if body["status"] == "ok" and body["workers"]["online"] else None


def start(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own process group, so stop() reaches the children it forks too.
    # Appending: supervisord's processes each open the log anew (as /dev/stdout).
    with log.open("ab") as handle:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen, *, sig=signal.SIGTERM, grace: float = 15) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def child_env(**overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def make_run_env(var_dir: Path, **overrides: str | None) -> dict[str, str]:
    """The environment `make run` gives its stack: embedded defaults (SQLite,
    the SQLite broker) under `var_dir`, listening on 127.0.0.1."""
    return child_env(
        VAR_DIR=str(var_dir), DATABASE_URL=None, REDIS_URL=None, DASHBOARD_ENV="local", HOST="127.0.0.1", **overrides
    )


def web_command() -> str:
    """The Procfile's web line, as `make run` runs it."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.removeprefix("web:").strip()


def answers_health(base: str) -> bool:
    import requests

    try:
        return requests.get(f"{base}/api/v1/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start_web(*, env: dict[str, str], log: Path, what: str = "the web server") -> tuple[subprocess.Popen, str, int]:
    """The web server alone, as `make run` starts it, on a free port: (process, base URL, port) once it answers."""
    port = free_port()
    server = start(["bash", "-c", web_command()], env={**env, "PORT": str(port)}, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_health(base), within=60, what=f"{what} answers", process=server)
    return server, base, port


def start_stack(*, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`make run`'s stack (web, workers, beat under supervisord) as the Makefile starts it."""
    return start([sys.executable, "manage.py", "run_stack", "--port", str(port)], env=env, log=log)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A management command in a child process, as a person runs it beside the stack."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def celery_worker(name: str) -> list[str]:
    """A worker as the Procfile starts one: every routed queue and this host's own."""
    from deployments import queue

    return [
        *["celery", "-A", "dashboard", "worker", "--concurrency", "1", "--hostname", f"{name}@%h", "-l", "INFO"],
        *["--queues", ",".join(queue.worker_queues())],
    ]
