"""/api/v1/health's latency while slow clients attack the web server, with
and without the compose stack's front proxy (issue 17, finding 4).

One dashboard web server as `make run` starts it (the Procfile's gunicorn:
2 workers x 4 threads, SQLite) and, in front of it, the repository's nginx
template under Debian's nginx (tests/front_proxy.py). For each front
(gunicorn directly, then nginx): health latency unattacked (the baseline),
then under attack by N clients that send a POST /login/ one byte every 2 s
(half of them the headers, half the body after quick headers) and
reconnect whenever they are dropped, as an attacker would. Reported: p50,
p95 and failures (no answer within --timeout s, counted as that long in
the percentiles), and each front's attacked p50 against its own baseline,
measured in the same run.

    .venv/bin/python bench/slow_clients.py [--clients 20] [--requests 20] [--timeout 5]
"""

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

import requests  # noqa: E402

from tests import front_proxy, processes  # noqa: E402


class Attacker(threading.Thread):
    def __init__(self, port: int, *, slow_headers: bool, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.slow_headers, self.stop, self.connections = port, slow_headers, stop, 0

    def run(self):
        head = (
            f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nCookie: csrftoken={'a' * 32}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n"
        ).encode()
        trickle, quick = (head, b"") if self.slow_headers else (b"username=" + b"x" * 9991, head)
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                    self.connections += 1
                    sock.sendall(quick)
                    for byte in trickle:
                        if self.stop.wait(2.0):
                            return
                        sock.sendall(bytes([byte]))
            except OSError:
                self.stop.wait(0.5)


def latencies(base: str, count: int, timeout: float) -> tuple[list[float], int]:
    times, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            ok = requests.get(f"{base}/api/v1/health", timeout=timeout).status_code == 200
        except requests.RequestException:
            ok = False
        # A request with no answer counts as the timeout (a lower bound) in the percentiles.
        times.append(time.perf_counter() - started if ok else timeout)
        failures += not ok
        time.sleep(0.5)
    return times, failures


def summary(times: list[float]) -> tuple[float, float]:
    if not times:
        return float("nan"), float("nan")
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def measure(port: int, args) -> dict:
    base = f"http://127.0.0.1:{port}"
    baseline, base_failures = latencies(base, args.requests, args.timeout)
    stop = threading.Event()
    attackers = [Attacker(port, slow_headers=i % 2 == 0, stop=stop) for i in range(args.clients)]
    for attacker in attackers:
        attacker.start()
    time.sleep(5)  # every attacker connected and sending
    attacked, failures = latencies(base, args.requests, args.timeout)
    stop.set()
    for attacker in attackers:
        attacker.join(5)
    return {
        "baseline": summary(baseline),
        "baseline_failures": base_failures,
        "attacked": summary(attacked),
        "failures": failures,
        "connections": sum(a.connections for a in attackers),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="slow-clients-"))
    env = processes.make_run_env(var)
    migrated = processes.manage("migrate", "--noinput", env=env)
    if migrated.returncode:
        raise SystemExit(migrated.stderr[-2000:])
    web, _, web_port = processes.start_web(env=env, log=var / "web.log")
    proxy_port = processes.free_port()
    nginx, folder = front_proxy.start(upstream=f"127.0.0.1:{web_port}", port=proxy_port)
    try:
        base = f"http://127.0.0.1:{proxy_port}"
        processes.wait_for(lambda: processes.answers_health(base), within=60, what="nginx answers")
        results = {"gunicorn directly": measure(web_port, args), "through nginx": measure(proxy_port, args)}
    finally:
        front_proxy.stop(nginx, folder)
        processes.stop(web)
        shutil.rmtree(var, ignore_errors=True)

    print(f"{args.clients} slow clients, {args.requests} health requests per phase, timeout {args.timeout:g} s")
    print("| front | unattacked p50 / p95 | attacked p50 / p95 | failed | attacked p50 / unattacked p50 |")
    print("| --- | --- | --- | --- | --- |")
    for front, r in results.items():
        (b50, b95), (a50, a95) = r["baseline"], r["attacked"]
        print(
            f"| {front} | {b50 * 1000:.1f} / {b95 * 1000:.1f} ms | {a50 * 1000:.1f} / {a95 * 1000:.1f} ms "
            f"| {r['failures']} of {args.requests} | {a50 / b50:.2f}x |"
        )
    print("attack connections opened: " + ", ".join(f"{f} {r['connections']}" for f, r in results.items()))


if __name__ == "__main__":
    main()
