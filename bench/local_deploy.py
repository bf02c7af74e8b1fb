"""Request-to-ready time of a local deployment through the dashboard, against
starting tritonserver by hand on the same repository, in the same run.

    .venv/bin/python bench/local_deploy.py [--runs 3] [--example add_sub]

Through the dashboard: deployment_create (what the page and API call) ->
on-commit enqueue -> a real Celery worker (Redis when REDIS_URL is set,
otherwise the SQLite broker) -> stage, start, load -> the observation
that marks it healthy. By hand: the same tritonserver flags on a copy of
the repository, until every model reports READY. Prints both medians and
the ratio (goal: at most 1.5x).
"""

import argparse
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
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-local-deploy-"))
os.environ.update({"DJANGO_SETTINGS_MODULE": "dashboard.settings", "VAR_DIR": str(VAR), "DASHBOARD_ENV": "local"})
os.environ.pop("DATABASE_URL", None)  # SQLite in VAR: the bench never touches a real database

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402

from deployments import queue  # noqa: E402
from deployments.models import Deployment, Environment, Target  # noqa: E402
from deployments.services.deployments import deployment_create, deployment_delete  # noqa: E402
from deployments.services.repositories import repository_load_example  # noqa: E402
from workers.targets.local import processes as local_processes  # noqa: E402
from workers.targets.local import runtime as triton_runtime  # noqa: E402


def by_hand(repository: Path, runtime) -> float:
    work = Path(tempfile.mkdtemp(prefix="by-hand-", dir=VAR))
    models = work / "models"
    shutil.copytree(repository, models)
    port, metrics = local_processes.free_port(), local_processes.free_port()
    command = runtime.command(models, http_port=port, metrics_port=metrics)
    started = time.perf_counter()
    process = local_processes.spawn(command, env=runtime.environment(), log=work / "triton.log", cwd=work)
    with httpx.Client(timeout=2) as client:
        while True:
            try:
                index = client.post(f"http://127.0.0.1:{port}/v2/repository/index", json={}).json()
                if index and all(m.get("state") == "READY" for m in index):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    elapsed = time.perf_counter() - started
    local_processes.stop(process, grace=10)
    return elapsed


def through_dashboard(repository, target, admin, n: int) -> float:
    started = time.perf_counter()
    deployment = deployment_create(name=f"bench-{n}", repository=repository, target=target, actor=admin)
    while True:
        deployment.refresh_from_db()
        if deployment.status == Deployment.Status.HEALTHY:
            break
        if deployment.status == Deployment.Status.FAILED:
            raise SystemExit(f"deploy failed: {deployment.status_reason}")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    deployment_delete(deployment=deployment, actor=admin)
    while Deployment.objects.get(pk=deployment.pk).status != Deployment.Status.DELETED:
        time.sleep(0.1)
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--example", default="add_sub")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", "--no-examples", stdout=open(os.devnull, "w"))  # noqa: SIM115
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    example = ROOT / "examples" / "model_repositories" / args.example
    repository = repository_load_example(path=example, actor=admin).repository
    target = Target.objects.get(name="local-dev", environment=Environment.objects.get(name="dev"))
    runtime = triton_runtime.prepare()

    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            *[sys.executable, "-m", "celery", "-A", "dashboard", "worker", "--concurrency", "1", "-l", "WARNING"],
            *["--queues", ",".join(queue.worker_queues())],
        ],
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        dashboard, manual = [], []
        for n in range(args.runs):
            manual.append(by_hand(repository.path, runtime))
            dashboard.append(through_dashboard(repository, target, admin, n))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        shutil.rmtree(VAR, ignore_errors=True)
    broker = "redis" if os.environ.get("REDIS_URL") else "SQLite"
    by_hand_median, dashboard_median = statistics.median(manual), statistics.median(dashboard)
    print(f"example {args.example}, {args.runs} runs each, broker {broker}")
    print(
        f"by hand (tritonserver until all READY): median {by_hand_median:.2f} s  runs {[round(x, 2) for x in manual]}"
    )
    print(
        f"through the dashboard (request to healthy): median {dashboard_median:.2f} s  runs "
        f"{[round(x, 2) for x in dashboard]}"
    )
    print(f"ratio dashboard / by hand: {dashboard_median / by_hand_median:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
