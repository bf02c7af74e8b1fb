"""A soak of `make run`'s stack: the real processes on their embedded defaults
(SQLite, the SQLite broker, supervisord), beat on short intervals, deploys to
the local target and console calls, for a while, with nothing crashing.

    .venv/bin/python bench/soak.py [--duration 600]

What runs, all through the API with the demo admin's token:
- one deployment of add_sub answers console calls (`POST .../infer`, outputs
  checked) from a thread, one every 0.1 s or so, for the whole run;
- meanwhile other deployments of add_sub are created, waited for until
  healthy, called once, deleted and waited for until deleted, one after
  another;
- beat sends health rounds every 2 s, reconciles every 5 s and worker
  heartbeats every 5 s, all through the embedded broker;
- `/api/v1/health` is asked every second.

It fails (exit 1) on any unexpected process exit that supervisord reports, an
"Unrecoverable error" in the log, a failed deploy, delete or console call, or
a health answer other than 200 with a worker online. It prints the counts and
the console's latency in the first and the last minute (the ratio says whether
the stack slowed down as it ran). Set LOCAL_ENDPOINT_PORTS to keep its Triton
servers within a port range.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EXPECTED = {"OUTPUT0": [11.0, 22.0, 33.0, 44.0], "OUTPUT1": [-9.0, -18.0, -27.0, -36.0]}
REQUEST = {
    "model": "add_sub",
    "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [10, 20, 30, 40]},
    ],
}
# Bounds on a hung step; not speed goals.
DEPLOY_WITHIN = 300
CALL_TIMEOUT = 60
# Seconds between two console calls.
CONSOLE_PAUSE = 0.1


class Soak:
    def __init__(self, duration: float, var: Path):
        self.duration = duration
        self.var = var
        self.env = {
            **os.environ,
            "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VAR_DIR": str(var),
            "DASHBOARD_ENV": "local",
            "HOST": "127.0.0.1",
            "HEALTH_POLL_INTERVAL": "2",
            "RECONCILE_INTERVAL": "5",
            "WORKER_HEARTBEAT_INTERVAL": "5",
        }
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        self.failures: list[str] = []
        self.counts = {"deploys": 0, "deletes": 0, "console calls": 0, "health checks": 0}
        self.latencies: list[tuple[float, float]] = []  # (seconds since start, console latency)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)
        print(f"FAILED: {what}", flush=True)

    def manage(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def setup(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("bootstrap_demo")
        self.manage("triton_runtime", "prepare")
        self.token = self.manage("create_api_token", "admin", "--scope", "deploy").strip().splitlines()[-1]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.var / "stack.log"
        with self.log.open("ab") as handle:
            self.stack = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [PYTHON, "manage.py", "run_stack", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Token {self.token}"}, timeout=CALL_TIMEOUT
        )
        deadline = time.monotonic() + 180
        while not self.healthy():
            if time.monotonic() > deadline or self.stack.poll() is not None:
                raise SystemExit(f"the stack did not come up; its log:\n{self.log.read_text()[-5000:]}")
            time.sleep(1)

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.base}/api/v1/health", timeout=10)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json()["workers"]["online"] > 0

    # --- the deployments ---------------------------------------------------

    def deploy(self, name: str) -> int:
        response = self.client.post(
            "/api/v1/deployments", json={"name": name, "repository": "example: add_sub", "target": "local-dev"}
        )
        if response.status_code != 201:
            raise RuntimeError(f"deploy {name}: {response.status_code} {response.text[:300]}")
        deployment_id = response.json()["id"]
        self.wait_for(deployment_id, "healthy")
        self.count("deploys")
        return deployment_id

    def delete(self, deployment_id: int) -> None:
        response = self.client.delete(f"/api/v1/deployments/{deployment_id}")
        if response.status_code not in (200, 202):
            raise RuntimeError(f"delete {deployment_id}: {response.status_code} {response.text[:300]}")
        self.wait_for(deployment_id, "deleted")
        self.count("deletes")

    def wait_for(self, deployment_id: int, status: str) -> None:
        deadline = time.monotonic() + DEPLOY_WITHIN
        while time.monotonic() < deadline:
            seen = self.client.get(f"/api/v1/deployments/{deployment_id}").json()
            if seen["status"] == status:
                return
            if seen["status"] in ("failed", "rejected"):
                raise RuntimeError(f"deployment {deployment_id}: {seen['status']} ({seen.get('status_reason')})")
            time.sleep(0.5)
        raise RuntimeError(f"deployment {deployment_id}: not {status} within {DEPLOY_WITHIN} s")

    def infer(self, deployment_id: int) -> float:
        started = time.perf_counter()
        response = self.client.post(f"/api/v1/deployments/{deployment_id}/infer", json=REQUEST)
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"infer {deployment_id}: {response.status_code} {response.text[:300]}")
        outputs = {output["name"]: output["data"] for output in response.json()["outputs"]}
        if outputs != EXPECTED:
            raise RuntimeError(f"infer {deployment_id}: wrong outputs {outputs}")
        self.count("console calls")
        return took

    # --- the loops -----------------------------------------------------------

    def console_loop(self, deployment_id: int) -> None:
        while not self.stop.is_set():
            try:
                took = self.infer(deployment_id)
                self.latencies.append((time.monotonic() - self.started, took))
                # A person at the console, or a script polling it: not a load test.
                self.stop.wait(CONSOLE_PAUSE)
            except (RuntimeError, httpx.HTTPError) as exc:
                self.fail(f"console: {exc}")
                time.sleep(1)

    def health_loop(self) -> None:
        while not self.stop.wait(1):
            self.count("health checks")
            if not self.healthy():
                self.fail("health: not 200 with a worker online")

    def watch_loop(self) -> None:
        """What supervisord says: a process that exited on its own is a crash."""
        reported = 0
        while not self.stop.wait(2):
            crashes = crashes_in(self.log.read_text(errors="replace"))
            for line in crashes[reported:]:
                self.fail(f"crash: {line}")
            reported = len(crashes)
            if self.stack.poll() is not None:
                self.fail(f"the stack exited with {self.stack.returncode}")
                return

    def run(self) -> None:
        console_id = self.deploy("soak-console")
        self.started = time.monotonic()
        threads = [
            threading.Thread(target=loop, args=args, daemon=True)
            for loop, args in ((self.console_loop, (console_id,)), (self.health_loop, ()), (self.watch_loop, ()))
        ]
        for thread in threads:
            thread.start()
        cycle = 0
        while time.monotonic() - self.started < self.duration and self.stack.poll() is None:
            cycle += 1
            try:
                deployment_id = self.deploy(f"soak-{cycle}")
                self.infer(deployment_id)
                self.delete(deployment_id)
            except (RuntimeError, httpx.HTTPError) as exc:
                self.fail(f"cycle {cycle}: {exc}")
                time.sleep(2)
        self.elapsed = time.monotonic() - self.started
        self.stop.set()
        for thread in threads:
            thread.join(CALL_TIMEOUT)
        if self.stack.poll() is None:
            try:
                self.delete(console_id)
            except (RuntimeError, httpx.HTTPError) as exc:
                self.fail(f"delete soak-console: {exc}")

    def shut_down(self) -> None:
        if getattr(self, "stack", None) is not None and self.stack.poll() is None:
            os.killpg(self.stack.pid, signal.SIGINT)  # Ctrl-C
            try:
                self.stack.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.stack.pid, signal.SIGKILL)
                self.stack.wait()
        # Any Triton the stack left behind (there should be none) runs out of the var folder.
        for proc in psutil.process_iter(["cmdline"]):
            if str(self.var) in " ".join(proc.info["cmdline"] or ()):
                proc.kill()

    def report(self) -> None:
        log = self.log.read_text(errors="replace")
        unrecoverable = log.count("Unrecoverable error")
        if unrecoverable:
            self.fail(f"{unrecoverable} 'Unrecoverable error' in the log")
        first = [took for at, took in self.latencies if at < 60]
        last = [took for at, took in self.latencies if at >= self.elapsed - 60]
        print(f"soak of {self.elapsed:.0f} s on the embedded stack ({self.var})")
        for name, count in self.counts.items():
            print(f"  {name}: {count}")
        print(f"  unexpected process exits: {len(crashes_in(log))}")
        print(f"  tracebacks in the log: {log.count('Traceback')}")
        if first and last:
            head, tail = statistics.median(first), statistics.median(last)
            print(
                f"  console latency, median: first minute {head * 1000:.1f} ms, last minute {tail * 1000:.1f} ms"
                f" (ratio {tail / head:.2f}x)"
            )
        print(f"  failures: {len(self.failures)}")
        for failure in self.failures[:20]:
            print(f"    {failure}")


def crashes_in(log: str) -> list[str]:
    """supervisord's lines for a process that exited when nobody stopped it."""
    return re.findall(r"^.*(?:WARN exited: .*not expected|gave up: .*).*$", log, flags=re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of traffic (default 600)")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="soak-"))
    soak = Soak(args.duration, var)
    try:
        soak.setup()
        soak.run()
    finally:
        soak.shut_down()
    soak.report()
    if soak.failures:
        print(f"its files are kept in {var}")
        return 1
    shutil.rmtree(var, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
