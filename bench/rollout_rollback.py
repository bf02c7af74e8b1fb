"""Rollback of a bad candidate: how long a candidate that fails or is slow
keeps taking traffic before its rollout sends everything back to the baseline.

    .venv/bin/python bench/rollout_rollback.py [--bake 10] [--interval 2] [--rate 60] [--repeats 2]

On the local target (sandboxed Tritons behind the endpoint), driven as in
production: a Celery worker for operations (concurrency 2) and one for the
periodic queue with the beat inside it (reconcile every `--interval` s, the
rollout's observation interval I). Broker: Redis when REDIS_URL is set,
otherwise `make run`'s SQLite broker; the database is SQLite in a
throw-away VAR_DIR. A steady stream of `--rate` requests/s (on a clock, six
connections) goes through the endpoint's split the whole time.

The baseline is add_sub answering in a fixed 20 ms (the model sleeps; three
instances, so that 90 % of the stream hardly queues). Each bad candidate
runs a rollout with steps [10 % for B s, 100 % for B s], the plan's default
gates failure_rate (at most max(2 x baseline, 1 %)) and p95_ms (at most
max(1.5 x baseline, 50 ms)), min_requests 20, on_rollback "remove":
- fails_fifth: every fifth request raises (20 % failures);
- slow: sleeps 60 ms, three times the baseline's 20 ms (both fixed in the
  models, not measured; the gate's p95 figures are printed beside them).

Measured per rollout, from the stream's own answers (the endpoint's
`azureml-model-deployment` header): t0 the candidate's first answer, t1 its
last one. Goals: t1 - t0 within one bake window plus one observation
interval (ratio (t1 - t0) / (B + I) at most 1), and the candidate's share
of the answers during its step (from the step's traffic operation finishing
to the rollback's) at most the step's 10 % (ratio at most 1). The driver's
own records are printed beside them: the step's traffic set, the bake's
start (the step's started_at), the failed verdict, the rollback's traffic
operation queued and finished.

The CI-sized check (each candidate is rolled back by its gate, traffic keeps
flowing) is tests/test_rollouts_live.py; this measures how fast.
"""

import argparse
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ("fails_fifth", "slow")
STEP_SHARE = 10
# The plan's defaults: failure_rate at most max(2 x baseline, 1 %), p95_ms at most
# max(1.5 x baseline, 50 ms), judged from 20 candidate requests on.
GATES = {"failure_rate": {}, "p95_ms": {}}
INSTANCES = 3
THREADS = 6


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bake", type=int, default=10, help="bake seconds of each step (B)")
    parser.add_argument("--interval", type=int, default=2, help="RECONCILE_INTERVAL, the observation interval (I)")
    parser.add_argument("--rate", type=float, default=60.0, help="requests per second through the endpoint")
    parser.add_argument("--repeats", type=int, default=2, help="rollouts of each bad candidate")
    return parser.parse_args()


ARGS = arguments()
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "VAR_DIR": str(VAR),
        "DASHBOARD_ENV": "local",
        # The plan's bakes are checked against it here, and the beat runs on it in the worker.
        "RECONCILE_INTERVAL": str(ARGS.interval),
    }
)
os.environ.pop("DATABASE_URL", None)  # SQLite in VAR: the bench never touches a real database

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from deployments import queue  # noqa: E402
from deployments.models import Deployment, Operation, Rollout, Target  # noqa: E402
from deployments.services.deployments import deployment_create  # noqa: E402
from deployments.services.rollouts import rollout_create  # noqa: E402
from tests.engine import endpoint_headers  # noqa: E402
from tests.load import BODY, Load  # noqa: E402
from tests.rollout_models import candidate_revision  # noqa: E402
from workers.targets.local import adapter as local  # noqa: E402
from workers.targets.local import router  # noqa: E402


class PacedLoad(Load):
    """tests/load.py's stream on a clock: request n leaves at start + n / rate,
    whichever connection is free takes it, so a slow answer delays no other
    request and the rate holds. Also keeps each answer's latency."""

    def __init__(self, url: str, headers: dict, *, per_second: float, threads: int):
        super().__init__(url, headers, per_second=per_second, threads=threads)
        self.rate = per_second
        self.latencies: list[tuple[float, str, float]] = []
        self._slots = itertools.count()

    def _run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self._stop.is_set():
                with self._lock:
                    slot = next(self._slots)
                delay = self._start + slot / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                sent = time.monotonic()
                try:
                    answer = client.post(self.url, json=BODY)
                except httpx.HTTPError:
                    served, status = "?", 0
                else:
                    served, status = answer.headers.get("azureml-model-deployment", "?"), answer.status_code
                now = time.monotonic()
                with self._lock:
                    self.answers[served] += 1
                    if status != 200:
                        self.failures[served] += 1
                    self.timeline.append((now, served, status))
                    self.latencies.append((now, served, (now - sent) * 1000))

    def __enter__(self) -> "PacedLoad":
        self._start = time.monotonic()
        return super().__enter__()


def start_workers() -> list[subprocess.Popen]:
    """The Procfile's operations and periodic workers, the beat inside the latter."""
    celery = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-l", "WARNING"]
    queues = [q for q in queue.worker_queues() if q != "periodic"]
    commands = [
        [*celery, "--concurrency", "2", "--hostname", "operations@%h", "--queues", ",".join(queues)],
        [
            *celery,
            *["--concurrency", "1", "--hostname", "periodic@%h", "--queues", "periodic"],
            *["--beat", "--schedule", str(VAR / "beat-schedule")],
        ],
    ]
    workers = []
    for n, command in enumerate(commands):
        with (VAR / f"worker-{n}.log").open("ab") as log:
            workers.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    command,
                    cwd=ROOT,
                    env=dict(os.environ),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(condition, *, within: float, what: str, workers=()):
    """A bound on a hung run, not a speed goal."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := condition():
            return found
        for worker in workers:
            if worker.poll() is not None:
                raise SystemExit(f"{what}: a worker exited ({worker.returncode}); see {VAR}/worker-*.log")
        time.sleep(0.1)
    raise SystemExit(f"{what}: not seen within {within:.0f} s")


def deploy_baseline(repository, admin, workers) -> Deployment:
    target = Target.objects.get(name="local-dev")
    deployment = deployment_create(name="rollback", repository=repository, target=target, actor=admin)

    def healthy():
        deployment.refresh_from_db()
        if deployment.status == Deployment.Status.FAILED:
            raise SystemExit(f"the baseline failed: {deployment.status_reason}")
        return deployment.status == Deployment.Status.HEALTHY

    wait_for(healthy, within=300, what="the baseline healthy", workers=workers)
    return deployment


def roll_out(deployment, repository, admin, workers, load: PacedLoad, behaviour: str) -> dict:
    bake, interval = ARGS.bake, ARGS.interval
    began = time.monotonic()
    rollout = rollout_create(
        deployment=deployment,
        actor=admin,
        repository=repository,
        steps=[{"traffic": STEP_SHARE, "bake_seconds": bake}, {"traffic": 100, "bake_seconds": bake}],
        gates=GATES,
        on_rollback="remove",
    )
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).status in Rollout.TERMINAL,
        within=300 + 10 * (bake + interval),
        what=f"rollout #{rollout.pk} ({behaviour}) finished",
        workers=workers,
    )
    ended = time.monotonic()
    rollout.refresh_from_db()
    step = rollout.steps.get(index=0)
    failed_step = rollout.steps.filter(status="failed").first()
    # The first step's split, and the rollback's.
    traffic = {
        {1: "step", None: "back"}.get(op.params.get("step"), "later"): op
        for op in deployment.operations.filter(kind=Operation.Kind.TRAFFIC, created_at__gte=rollout.created_at)
        if op.params.get("rollout") == rollout.pk
    }
    with load._lock:
        during = [(at, served, status) for at, served, status in load.timeline if began <= at <= ended]
    theirs = [at for at, served, _ in during if served == rollout.candidate_name]
    if rollout.status != Rollout.Status.ROLLED_BACK or not theirs or not {"step", "back"} <= set(traffic):
        raise SystemExit(
            f"rollout #{rollout.pk} ({behaviour}) is {rollout.status}: {rollout.reason} "
            f"({len(theirs)} answers from the candidate, traffic operations {sorted(traffic)})"
        )
    t0, t1 = theirs[0], theirs[-1]
    # Wall-clock times of the driver's records, on the stream's clock.
    offset = time.time() - time.monotonic()

    def at(moment) -> float:
        return moment.timestamp() - offset

    on, back = at(traffic["step"].finished_at), at(traffic["back"].finished_at)

    def share(start: float, end: float) -> tuple[float, int]:
        answered = [served for when, served, status in during if start <= when <= end and status]
        return answered.count(rollout.candidate_name) / len(answered), len(answered)

    with load._lock:
        ms = [ms for when, served, ms in load.latencies if t0 <= when <= t1 and served == rollout.candidate_name]
    failed = [c for c in failed_step.verdict.get("checks", []) if c["passed"] is False] if failed_step else []
    return {
        "behaviour": behaviour,
        "candidate": rollout.candidate_name,
        "baseline": rollout.baseline_name,
        "gates": failed,
        "failed_at": f"{failed_step.traffic} %" if failed_step else "none",
        "reason": rollout.reason,
        "seconds": t1 - t0,
        # The step as the driver ran it, from its traffic set to traffic back,
        # and between the candidate's first and last answers (both of them in).
        "share": share(on, back),
        "share_answers": share(t0, t1),
        "by_operations": back - on,
        "candidate_ms": ms,
        # Each moment after the first answer of the candidate, in seconds.
        "marks": {
            "traffic on (operation finished)": on - t0,
            "bake started (started_at)": at(step.started_at) - t0,
            "gate failed (the step's ended_at)": at((failed_step or step).ended_at) - t0,
            "rollback queued": at(traffic["back"].created_at) - t0,
            "traffic back (operation finished)": back - t0,
            "last answer of the candidate": t1 - t0,
        },
        "figures": (failed_step or step).figures,
    }


def p50_p95(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f} / {statistics.quantiles(samples, n=20)[18]:.1f} ms"


def main():
    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", "--no-examples", stdout=open(os.devnull, "w"))  # noqa: SIM115
    admin = get_user_model().objects.get(username="admin")
    revisions = VAR / "revisions"
    baseline = candidate_revision(revisions, "paced", admin, instances=INSTANCES)
    candidates = {b: candidate_revision(revisions, b, admin, instances=INSTANCES) for b in CANDIDATES}
    workers, runs = start_workers(), []
    try:
        deployment = deploy_baseline(baseline, admin, workers)
        url = f"{deployment.scoring_uri}/v2/models/add_sub/infer"
        with PacedLoad(url, endpoint_headers(deployment), per_second=ARGS.rate, threads=THREADS) as load:
            time.sleep(3)
            for _ in range(ARGS.repeats):
                for behaviour in CANDIDATES:
                    runs.append(roll_out(deployment, candidates[behaviour], admin, workers, load, behaviour))
            elapsed = time.monotonic() - load._start
        lost = sum(count for served, count in load.failures.items() if served not in {r["candidate"] for r in runs})
    finally:
        stop_workers(workers)
        for deployment in Deployment.objects.all():
            local.stop_servers(deployment.pk)
        router.stop()
        shutil.rmtree(VAR, ignore_errors=True)

    goal = ARGS.bake + ARGS.interval
    print(
        f"B = {ARGS.bake} s, I = {ARGS.interval} s, goal B + I = {goal} s; {len(load.timeline)} requests in "
        f"{elapsed:.0f} s ({len(load.timeline) / elapsed:.1f}/s); the baseline's answers, client p50 / p95: "
        f"{p50_p95([ms for _, served, ms in load.latencies if served == runs[0]['baseline']])}"
    )
    print(f"failed answers of anything but the bad candidates: {lost} (goal 0)")
    print()
    print(
        "| candidate | gate failed (candidate / limit), at | its answers, client p50 / p95 | t1 - t0 | ratio to B + I "
        "| by the operations | share of the step's answers | ratio to 10 % | share between t0 and t1 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        gates = ", ".join(f"{g['gate']} ({g['candidate']:g} / {g['limit']:g})" for g in run["gates"])
        (share, answered), (between, _) = run["share"], run["share_answers"]
        print(
            f"| {run['behaviour']} | {gates or 'none'}, at {run['failed_at']} | {p50_p95(run['candidate_ms'])} | "
            f"{run['seconds']:.2f} s | "
            f"{run['seconds'] / goal:.2f} | {run['by_operations']:.2f} s | {100 * share:.1f} % of {answered} | "
            f"{100 * share / STEP_SHARE:.2f} | {100 * between:.1f} % |"
        )
    print()
    print("seconds after the candidate's first answer:")
    for mark in runs[0]["marks"]:
        print(f"  {mark:<36} " + "  ".join(f"{run['marks'][mark]:6.2f}" for run in runs))
    worst = max(run["seconds"] for run in runs)
    print(
        f"worst t1 - t0 {worst:.2f} s: {worst / goal:.2f} of B + I (goal <= 1); worst share "
        f"{max(100 * run['share'][0] for run in runs):.1f} % (goal <= {STEP_SHARE} %)"
    )
    for run in runs:
        base, cand = run["figures"].get("baseline", {}), run["figures"].get("candidate", {})
        print(
            f"  {run['behaviour']}: baseline p95 {base.get('p95_ms')} ms, failure rate {base.get('failure_rate')}; "
            f"candidate p95 {cand.get('p95_ms')} ms, failure rate {cand.get('failure_rate')}, "
            f"{cand.get('requests')} requests in the last window; {run['reason']}"
        )


if __name__ == "__main__":
    main()
