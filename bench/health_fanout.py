"""One health round over many endpoints, against a naive sequential loop and
the theoretical bound, in the same run.

    .venv/bin/python bench/health_fanout.py [--endpoints 1000] [--sequential-sample 40]

1,000 simulated Triton endpoints on loopback (one asyncio server; each
answer takes 50 ms; 10% never answer). Measured:
- a full poller round (deployments.health.poller.health_round: the probes
  and the database work, on a throw-away SQLite database);
- a naive sequential loop with tritonclient.http (live, ready, model ready
  per endpoint, same timeout), cut off after a sample and extrapolated;
- the bound ceil(N / concurrency) x 50 ms + timeout.
Goals: round at most 1.5x the bound, at least 20x faster than sequential,
database writes only for endpoints whose status changed.
"""

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-health-"))
os.environ.update({"DJANGO_SETTINGS_MODULE": "dashboard.settings", "VAR_DIR": str(VAR), "DASHBOARD_ENV": "local"})
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from deployments.health.poller import health_round  # noqa: E402
from deployments.models import Deployment, Environment, HealthSample, ModelLine, ModelRepository, Target, TritonModel  # noqa: E402

LATENCY = 0.05


class Simulator:
    """The simulated endpoints in a process of their own, so they do not share
    the poller's GIL (on 2 cores, that would measure the simulator too)."""

    def __init__(self):
        import subprocess

        port_file = VAR / "simulator.port"
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "tests.fakes.triton_sim", str(LATENCY), "10", str(port_file)], cwd=ROOT
        )
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/e/{n}"

    def stop(self):
        self.process.kill()
        self.process.wait()


def seed(simulator, count: int) -> None:
    environment = Environment.objects.create(name="bench")
    target = Target.objects.create(name="bench", kind="local", environment=environment)
    repository = ModelRepository.objects.create(
        line=ModelLine.objects.create(name="bench", last_revision=1),
        revision=1,
        name="bench",
        digest="0" * 64,
        status="valid",
        source="upload",
        source_name="bench",
        storage_dir="x",
        file_count=1,
        total_bytes=1,
    )
    TritonModel.objects.create(repository=repository, name="m", versions=[1], config_source="explicit")
    healthy = {"models": [{"name": "m", "version": "1", "ready": True, "reason": ""}]}
    Deployment.objects.bulk_create(
        Deployment(
            name=f"d{n}",
            repository=repository,
            repository_name="bench",
            repository_digest="0" * 64,
            target=target,
            spec_digest="0" * 64,
            status=Deployment.Status.HEALTHY,
            scoring_uri=simulator.url(n),
            observed=healthy,
        )
        for n in range(count)
    )


def sequential(simulator, sample: int, timeout: float) -> float:
    import tritonclient.http as triton_http

    started = time.perf_counter()
    for n in range(sample):
        client = triton_http.InferenceServerClient(
            f"127.0.0.1:{simulator.port}/e/{n}", connection_timeout=timeout, network_timeout=timeout
        )
        try:
            client.is_server_live()
            client.is_server_ready()
            client.is_model_ready("m", "1")
        except Exception:  # noqa: S112 - a hung endpoint times out: that is the point
            continue
        finally:
            client.close()
    return (time.perf_counter() - started) / sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--sequential-sample", type=int, default=40)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    simulator = Simulator()
    try:
        seed(simulator, args.endpoints)
        timeout, concurrency = settings.HEALTH_PROBE_TIMEOUT, settings.HEALTH_CONCURRENCY
        with CaptureQueriesContext(connection) as first_queries:
            first = health_round()
        with CaptureQueriesContext(connection) as second_queries:
            second = health_round()
        per_endpoint = sequential(simulator, args.sequential_sample, timeout)
    finally:
        simulator.stop()
    writes = lambda queries: sum(  # noqa: E731
        1 for q in queries.captured_queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")
    )
    bound = math.ceil(args.endpoints / concurrency) * LATENCY + timeout
    sequential_total = per_endpoint * args.endpoints
    hung = math.ceil(args.endpoints / 10)
    print(
        f"{args.endpoints} endpoints, {hung} never answer, {LATENCY * 1000:.0f} ms per answer, "
        f"concurrency {concurrency}, timeout {timeout:g} s"
    )
    print(f"bound ceil(N/concurrency) x 50 ms + timeout: {bound:.2f} s")
    print(
        f"poller round 1: {first.seconds:.2f} s ({first.changed} changed: {HealthSample.objects.count()} samples, "
        f"{writes(first_queries)} write statements)"
    )
    print(
        f"poller round 2: {second.seconds:.2f} s ({second.changed} changed, {writes(second_queries)} write statements)"
    )
    print(
        f"sequential tritonclient loop: {per_endpoint * 1000:.0f} ms per endpoint over {args.sequential_sample}, "
        f"extrapolated {sequential_total:.1f} s"
    )
    print(f"ratio round 2 / bound: {second.seconds / bound:.2f}x (goal <= 1.5x); round 1: {first.seconds / bound:.2f}x")
    print(f"speed-up over sequential: {sequential_total / second.seconds:.0f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
