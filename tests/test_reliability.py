"""The engine under failure, on real services: a private Redis server, real
Celery workers, real Triton. Each test converges to exactly one server."""

import shutil
import signal
import subprocess
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from dashboard.celery import app as celery_app
from deployments import queue
from deployments.models import Deployment, Operation
from deployments.services.deployments import deployment_create
from deployments.services.operations import MAX_RETRY_DELAY, reconcile
from deployments.services.repositories import repository_load_example
from tests import processes
from tests.archives import EXAMPLES
from tests.engine import local_target
from tests.services import IN_CI
from workers.targets.local import adapter as local
from workers.targets.local import processes as local_processes
from workers.tasks import run_operation

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    """A redis-server of the test's own, so it can be restarted freely."""

    def __init__(self, tmp_path):
        self.port = processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tmp_path / "redis.log"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log),
            ],
        )
        client = redis.Redis.from_url(self.url)
        processes.wait_for(lambda: _pings(client), within=20, what="private redis up")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self):
        self.stop()
        self.start()

    def queued(self) -> int:
        client = redis.Redis.from_url(self.url)
        return sum(client.llen(name) for name in queue.worker_queues())


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def _use_broker(url: str) -> None:
    """Point this process's Celery app at another broker, dropping pooled connections."""
    celery_app.conf.CELERY_BROKER_URL = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path, settings):
    if not shutil.which("redis-server"):
        if IN_CI:
            pytest.fail("redis-server is not installed, and CI must run every test")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    previous = celery_app.conf.broker_url
    _use_broker(server.url)
    yield server
    _use_broker(previous)
    server.stop()


@pytest.fixture
def start_worker(broker, tmp_path, settings):
    started = []

    def start(name="w1"):
        env = processes.child_env(
            DATABASE_URL=processes.test_database_url(),
            REDIS_URL=broker.url,
            STORAGE_ROOT=str(settings.STORAGE_ROOT),
            # The worker heartbeats at the pace the test's reconciler judges
            # staleness by (a quarter of it), as one deployment's settings would.
            OPERATION_STALE_AFTER=str(settings.OPERATION_STALE_AFTER),
        )
        worker = processes.start(
            processes.celery_worker(name),
            env=env,
            log=tmp_path / f"{name}.log",
        )
        started.append((worker, tmp_path / f"{name}.log"))
        return worker

    yield start
    for worker, log in started:
        processes.stop(worker)
        print(log.read_text()[-3000:])


@pytest.fixture
def request_deploy(deployer):
    made = []

    def request(name: str) -> Deployment:
        repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
        deployment = deployment_create(name=name, repository=repository, target=local_target(), actor=deployer)
        made.append(deployment)
        return deployment

    yield request
    for deployment in made:
        local.stop_servers(deployment.pk)


def servers_of(deployment) -> list:
    return local_processes.processes_mentioning(f"--model-repository={local.workdir(deployment.pk)}/")


def wait_healthy(deployment, within=120, reconciling=False, process=None):
    def healthy():
        if reconciling:
            reconcile()
        deployment.refresh_from_db()
        return deployment.status == Deployment.Status.HEALTHY

    processes.wait_for(healthy, within=within, what=f"{deployment.name} healthy", process=process)


def test_every_countdown_stays_below_the_visibility_timeout(settings):
    limit = settings.CELERY_VISIBILITY_TIMEOUT
    assert limit > MAX_RETRY_DELAY
    assert limit > settings.CELERY_TASK_TIME_LIMIT
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["schedule"] < limit
        assert entry["options"]["expires"] <= entry["schedule"]


def test_a_message_delivered_twice_deploys_once(start_worker, request_deploy):
    deployment = request_deploy("twice")  # on commit: the first message
    operation = deployment.operations.get()
    run_operation.delay(operation.pk)
    run_operation.delay(operation.pk)
    worker = start_worker()
    wait_healthy(deployment, process=worker)
    operation.refresh_from_db()
    assert operation.attempts == 1
    assert sum("Starting tritonserver" in step["message"] for step in operation.steps) == 1
    assert len(servers_of(deployment)) == 1


def test_a_worker_killed_mid_deploy_converges_with_one_server(start_worker, request_deploy, settings):
    settings.OPERATION_STALE_AFTER = 4
    first = start_worker("doomed")
    deployment = request_deploy("killed")
    operation = deployment.operations.get()

    def started_triton():
        operation.refresh_from_db()
        return any("Starting tritonserver" in step["message"] for step in operation.steps)

    processes.wait_for(started_triton, within=120, what="deploy under way", process=first)
    processes.stop(first, sig=signal.SIGKILL)
    operation.refresh_from_db()
    assert operation.status == Operation.Status.RUNNING  # its worker is gone; nobody finishes it

    second = start_worker("rescuer")
    wait_healthy(deployment, reconciling=True, process=second)
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED
    assert operation.attempts == 2
    assert any("Worker lost" in step["message"] for step in operation.steps)
    assert len(servers_of(deployment)) == 1


def test_redis_restarted_with_a_queued_deploy_loses_nothing(broker, start_worker, request_deploy, settings):
    settings.OPERATION_RESEND_AFTER = 0
    deployment = request_deploy("restarted")
    processes.wait_for(lambda: broker.queued() == 1, within=10, what="message queued")
    broker.restart()  # nothing on disk: the queued message is gone
    assert broker.queued() == 0
    worker = start_worker()
    wait_healthy(deployment, reconciling=True, process=worker)
    assert len(servers_of(deployment)) == 1


def test_an_operation_whose_worker_dies_three_times_needs_attention(request_deploy, settings):
    settings.OPERATION_STALE_AFTER = 0
    deployment = request_deploy("cursed")
    operation = deployment.operations.get()
    # As after a third claim whose worker then died a minute ago.
    Operation.objects.filter(pk=operation.pk).update(
        status=Operation.Status.RUNNING, attempts=3, heartbeat_at=timezone.now() - timedelta(minutes=1)
    )
    reconcile()
    operation.refresh_from_db()
    deployment.refresh_from_db()
    assert operation.status == Operation.Status.NEEDS_ATTENTION
    assert deployment.status == Deployment.Status.FAILED
    assert "lost 3 times" in deployment.status_reason


def test_a_worker_killed_mid_rollout_resumes_where_it_was(broker, deployer, request_deploy, tmp_path, settings):
    """The worker runs the reconciler's beat too, so it is the rollout's
    driver: killed during the second step's bake, its successor carries on
    from that step, and the first is not run again."""

    settings.RECONCILE_INTERVAL = 1  # as the workers have it: bakes of a few seconds are allowed
    started = []

    def worker(name: str):
        env = processes.child_env(
            DATABASE_URL=processes.test_database_url(),
            REDIS_URL=broker.url,
            STORAGE_ROOT=str(settings.STORAGE_ROOT),
            RECONCILE_INTERVAL="1",
            OPERATION_STALE_AFTER="4",
        )
        command = [*processes.celery_worker(name), "--beat", "--schedule", str(tmp_path / f"{name}.beat")]
        started.append(processes.start(command, env=env, log=tmp_path / f"{name}.log"))
        return started[-1]

    try:
        _killed_mid_rollout(worker, deployer, request_deploy, tmp_path)
    finally:
        for process in started:
            processes.stop(process, sig=signal.SIGKILL)


def _killed_mid_rollout(worker, deployer, request_deploy, tmp_path):
    from deployments.models import AuditEvent, Rollout
    from deployments.services.rollouts import rollout_create
    from tests.rollout_models import candidate_revision

    first = worker("driver")
    deployment = request_deploy("rolled")
    wait_healthy(deployment, process=first)
    baseline = local.main_deployment(deployment.pk)
    rollout = rollout_create(
        deployment=deployment,
        actor=deployer,
        repository=candidate_revision(tmp_path, "good", deployer),
        steps=[
            {"traffic": 30, "bake_seconds": 3},
            {"traffic": 60, "bake_seconds": 6},
            {"traffic": 100, "bake_seconds": 2},
        ],
    )

    def second_step_baking():
        rollout.refresh_from_db()
        return rollout.step_index == 1 and rollout.phase == Rollout.Phase.BAKING

    processes.wait_for(second_step_baking, within=120, what="the second step baking", process=first)
    processes.stop(first, sig=signal.SIGKILL)
    step_one = rollout.steps.get(index=0)
    assert step_one.status == "passed"

    second = worker("successor")
    processes.wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).status in Rollout.TERMINAL,
        within=120,
        what="the rollout finished",
        process=second,
    )
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.PROMOTED, rollout.reason
    assert rollout.steps.get(index=0).started_at == step_one.started_at, "the first step was not run again"
    passed = AuditEvent.objects.filter(action="rollout.step_passed", details__rollout=rollout.pk)
    assert sorted(event.details["step"] for event in passed) == [1, 2, 3]
    candidate_deploys = deployment.operations.filter(kind=Operation.Kind.DEPLOY, params__rollout=rollout.pk)
    assert candidate_deploys.count() == 1
    assert local.main_deployment(deployment.pk) == rollout.candidate_name
    assert len(servers_of(deployment)) == 1, "one server: the candidate's; the baseline was retired"
    assert baseline != rollout.candidate_name


def test_a_config_search_whose_worker_is_killed_leaves_no_scratch_deployment_behind(start_worker, deployer, settings):
    """Killed mid-sweep, the worker leaves a scratch Triton running (servers
    outlive workers, as deployments must). The reconciler fails the search
    once it stops beating and removes the scratch deployment, process and
    folders; the search says why."""
    from deployments.loadlab import search as config_search
    from deployments.models import AuditEvent, ConfigSearch
    from deployments.services.config_searches import config_search_create

    repository = repository_load_example(path=EXAMPLES / "batching", actor=deployer).repository
    worker = start_worker("searcher")
    found = config_search_create(
        actor=deployer,
        repository=repository,
        model="launch_bound",
        target=local_target(),
        grid=[{"dynamic_batching": False, "instances": 1}],
        concurrency=[1, 2],
        window_seconds=1,
        max_trials=20,
    )
    scratch = config_search.scratch_id(found.pk, 0)

    def sweeping():
        found.refresh_from_db()
        return found.status == ConfigSearch.Status.RUNNING and found.progress.get("step", "").startswith(("1 ", "2 "))

    processes.wait_for(sweeping, within=120, what="the search sweeping its scratch deployment", process=worker)
    assert found.scratch == [scratch]
    processes.stop(worker, sig=signal.SIGKILL)
    assert local_processes.processes_mentioning(f"{local.workdir(scratch)}/")

    settings.LOADTEST_STALE_AFTER = 1
    processes.wait_for(
        lambda: reconcile().get("searches_lost") or ConfigSearch.objects.get(pk=found.pk).status == "failed",
        within=30,
        what="the reconciler taking the search for lost",
    )
    reconcile()
    found.refresh_from_db()
    assert found.status == ConfigSearch.Status.FAILED
    assert "its worker stopped" in found.error
    assert found.scratch == []
    assert not local_processes.processes_mentioning(f"{local.workdir(scratch)}/")
    assert not local.workdir(scratch).exists()
    assert not config_search.scratch_folder(found.pk).exists()
    assert AuditEvent.objects.filter(action="configsearch.failed", object_id=str(found.pk)).exists()
