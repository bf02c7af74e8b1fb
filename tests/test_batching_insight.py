"""The deployment page's batching insight: Triton's counters (its /metrics
locally, its statistics extension through the endpoint on SDK v2) kept over
a window, set against each model's config, with a plain hint; and honest
words where a kind gives no counters or nothing was sent."""

import http.server
import json
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from deployments import crypto
from deployments.health import counter_window, metrics
from deployments.health.counter_window import ModelWindow
from deployments.models import Deployment, Environment, Operation, Target, TritonModel
from deployments.selectors.batching import batching_config, batching_insight
from deployments.selectors.batching_hints import BatchingConfig, hint
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.engine import local_target

pytestmark = pytest.mark.django_db

STATISTICS = json.loads((Path(__file__).parent / "data" / "triton_signals" / "statistics.json").read_text())


def metrics_page(model: str, *, success: int, executions: int, inferences: int, request_us: int, queue_us: int) -> str:
    """A /metrics page as Triton 2.51 writes one model's counters."""
    labels = f'{{model="{model}",version="1"}}'
    lines = {
        "nv_inference_request_success": success,
        "nv_inference_request_failure": 0,
        "nv_inference_count": inferences,
        "nv_inference_exec_count": executions,
        "nv_inference_request_duration_us": request_us,
        "nv_inference_queue_duration_us": queue_us,
        "nv_inference_compute_infer_duration_us": request_us - queue_us,
    }
    return "".join(f"# TYPE {name} counter\n{name}{labels} {value}\n" for name, value in lines.items())


def read(deployment, page: str, *, at, source="http://127.0.0.1:9/metrics") -> None:
    counters, gauges, _ = metrics.parse(page)
    metrics.record(deployment, counters, gauges, now=at, source=source)


@pytest.fixture
def launch_bound(deployer):
    """The batching example (launch_bound: max_batch_size 32, no dynamic
    batching) deployed to a local target, as the scrape finds it running."""
    repository = repository_load_example(path=EXAMPLES / "batching", actor=deployer).repository
    deployment = deployment_create(name="launch", repository=repository, target=local_target(), actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    deployment.refresh_from_db()
    return deployment


def page_of(client, user, deployment) -> str:
    client.force_login(user)
    response = client.get(reverse("deployment", args=[deployment.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_eight_clients_on_a_model_without_dynamic_batching_read_as_batch_one_with_a_hint(
    client, deployer, launch_bound
):
    start = timezone.now() - timedelta(minutes=2)
    read(
        launch_bound,
        metrics_page("launch_bound", success=0, executions=0, inferences=0, request_us=0, queue_us=0),
        at=start,
    )
    # A minute of 8 clients, one request each in Triton at a time: 480 s of request time in 60 s.
    busy = metrics_page(
        "launch_bound", success=600, executions=600, inferences=600, request_us=480_000_000, queue_us=420_000_000
    )
    read(launch_bound, busy, at=start + timedelta(minutes=1))
    page = page_of(client, deployer, launch_bound)
    assert "Batching" in page
    assert "nv_inference_exec_count" in page
    row = page[page.index("<td>launch_bound</td>") :]
    assert "<td>32</td>" in row[:200]
    assert "<td>off</td>" in row
    assert "<strong>1.0</strong>" in row
    assert "88 %" in row  # 420 of 480 s queued
    assert "Dynamic batching is off; at about 8 concurrent requests the average batch is 1.0" in row
    assert "up to 32 per execution" in row


def test_an_idle_window_says_no_requests_and_what_the_server_saw_since_it_started(deployer, launch_bound):
    start = timezone.now() - timedelta(minutes=5)
    served = metrics_page("launch_bound", success=40, executions=20, inferences=40, request_us=4000, queue_us=400)
    for minute in range(5):
        read(launch_bound, served, at=start + timedelta(minutes=minute))
    (row,) = batching_insight(launch_bound).models
    assert row.window.requests == 0
    assert (
        row.hint == "No requests in the last 4 minutes. Since its server started: average batch 2.0 over 20 executions."
    )


def test_one_read_is_no_window_yet_and_before_any_read_the_page_says_so(client, deployer, launch_bound):
    assert "Not read yet" in page_of(client, deployer, launch_bound)
    read(
        launch_bound,
        metrics_page("launch_bound", success=3, executions=3, inferences=3, request_us=9, queue_us=1),
        at=timezone.now(),
    )
    (row,) = batching_insight(launch_bound).models
    assert row.window is None
    assert row.hint.startswith("No window yet: it needs a second read. Since its server started: average batch 1.0")


def test_a_restarted_server_counts_from_zero_and_a_new_server_starts_the_window_again():
    now = 1_000_000.0
    last = counter_window.remember(
        {}, {"m": {"success": 100, "executions": 100, "inferences": 100}}, now=now, source="a"
    )
    last = counter_window.remember(
        last, {"m": {"success": 5, "executions": 2, "inferences": 8}}, now=now + 60, source="a"
    )
    seen = counter_window.window(last)
    assert seen.models["m"].restarted
    assert seen.models["m"].average_batch == 4.0
    moved = counter_window.remember(
        last, {"m": {"success": 1, "executions": 1, "inferences": 1}}, now=now + 120, source="b"
    )
    assert moved["history"] == []
    assert counter_window.window(moved).start is None


def test_reads_older_than_the_window_are_dropped():
    last = {}
    for minute in range(30):
        last = counter_window.remember(last, {"m": {"success": minute}}, now=minute * 60.0, source="a")
    seen = counter_window.window(last)
    assert seen.seconds == counter_window.WINDOW_SECONDS
    assert seen.models["m"].success == 15


def test_the_config_gives_dynamic_batching_its_preferred_sizes_and_queue_delay():
    model = TritonModel(
        name="m",
        max_batch_size=16,
        config_source=TritonModel.ConfigSource.EXPLICIT,
        config_text=(
            'name: "m" backend: "python" max_batch_size: 16 '
            "dynamic_batching { preferred_batch_size: [ 8, 4 ] max_queue_delay_microseconds: 500 }"
        ),
    )
    assert batching_config(model) == BatchingConfig(
        scheduler="dynamic", max_batch_size=16, preferred=(4, 8), max_queue_delay_us=500
    )
    auto = TritonModel(name="a", max_batch_size=0, config_source=TritonModel.ConfigSource.AUTO_COMPLETE)
    assert batching_config(auto) == BatchingConfig(scheduler="unknown", max_batch_size=None)


def busy(*, batch: float, in_flight: float, queue: float, failures: float = 0) -> ModelWindow:
    executions = 100.0
    return ModelWindow(
        success=executions * batch,
        failure=failures,
        inferences=executions * batch,
        executions=executions,
        request_us=in_flight * 60e6,
        queue_us=queue * in_flight * 60e6,
        busy_seconds=60,
    )


@pytest.mark.parametrize(
    ("config", "window", "says"),
    [
        (
            BatchingConfig("dynamic", 8, (4, 8), 100),
            busy(batch=7.8, in_flight=30, queue=0.7),
            "Batches are nearly full (7.8 of 8) and requests spend 70% of their time queued: the model is saturated.",
        ),
        (
            BatchingConfig("dynamic", 32, (8, 16), 0),
            busy(batch=2.5, in_flight=3, queue=0.1),
            "below the smallest preferred size (8): at about 3 concurrent requests too few requests wait to fill one, "
            "so Triton runs what it has at once (max_queue_delay 0).",
        ),
        (
            BatchingConfig("dynamic", 32),
            busy(batch=1.0, in_flight=1.0, queue=0.0),
            "Dynamic batching is on, but requests came one at a time, so batches stay near 1.0",
        ),
        (
            BatchingConfig("dynamic", 32),
            busy(batch=6.2, in_flight=8, queue=0.2),
            "Dynamic batching is on and combining requests: 6.2 per execution on average at about 8 concurrent",
        ),
        (
            BatchingConfig("none", 32),
            busy(batch=1.0, in_flight=1.0, queue=0.0),
            "Dynamic batching is off, and requests came one at a time (average batch 1.0)",
        ),
        (
            BatchingConfig("none", 0),
            busy(batch=1.0, in_flight=4, queue=0.5),
            "This model does not batch (max_batch_size 0)",
        ),
        (
            BatchingConfig("none", 32),
            busy(batch=1.0, in_flight=4, queue=0.5, failures=3),
            "3 failed requests counted as executions without inferences",
        ),
        (
            BatchingConfig("ensemble", 8),
            busy(batch=1.0, in_flight=4, queue=0.5),
            "batching happens in the models it calls",
        ),
    ],
)
def test_each_situation_gets_its_plain_hint(config, window, says):
    assert says in hint(config, window, None, "15 minutes")


def test_the_fake_kind_says_it_gives_no_counters_and_why(client, admin, deployer):
    from deployments.services.targets import target_create

    repository = repository_load_example(path=EXAMPLES / "batching", actor=deployer).repository
    env = Environment.objects.create(name="dev")
    target = target_create(actor=admin, name="fake-dev", kind="fake", environment=env)
    deployment = deployment_create(name="in-memory", repository=repository, target=target, actor=deployer)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    page = page_of(client, deployer, deployment)
    assert "No figures for this deployment: Fake (in memory) targets run no Triton the dashboard can reach" in page
    # The config's side still shows: what the model allows.
    assert "<td>launch_bound</td>" in page
    assert "<td>32</td>" in page


def test_an_sdk_v1_service_says_why_its_counters_are_not_read(client, deployer):
    repository = repository_load_example(path=EXAMPLES / "batching", actor=deployer).repository
    env = Environment.objects.create(name="staging")
    target = Target.objects.create(name="aks", kind="azureml_v1_aks", environment=env, settings={})
    deployment = deployment_create(name="old-service", repository=repository, target=target, actor=deployer)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    page = page_of(client, deployer, deployment)
    assert "passes no Triton /metrics through" in page
    assert "SDK v1&#x27;s support ended on 2026-06-30" in page


class FakeScoringFront(http.server.ThreadingHTTPServer):
    """Stands in for an SDK v2 endpoint's address (Azure, at the HTTP
    boundary): it answers Triton's statistics for the deployment the header
    names, with the endpoint's key, and notes what it was asked."""

    def __init__(self, payload: dict):
        self.payload, self.asked = payload, []
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                front.asked.append((self.path, dict(self.headers)))
                ok = self.headers.get("Authorization") == "Bearer k1" and self.headers.get("azureml-model-deployment")
                body = json.dumps(front.payload if ok else {"error": "no"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/score"


@pytest.mark.parametrize("instances", [1, 3])
def test_an_sdk_v2_endpoint_is_read_through_its_statistics_with_the_deployment_header(
    client, admin, deployer, instances
):
    env = Environment.objects.create(name="staging")
    target = Target.objects.create(
        name="v2", kind="azureml_v2_managed", environment=env, settings={"instance_count": instances}
    )
    repository = repository_load_example(path=EXAMPLES / "batching", actor=deployer).repository
    deployment = deployment_create(name="v2-endpoint", repository=repository, target=target, actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    front = FakeScoringFront(STATISTICS)
    try:
        Deployment.objects.filter(pk=deployment.pk).update(
            status=Deployment.Status.HEALTHY,
            scoring_uri=front.uri,
            key_encrypted=crypto.encrypt("k1"),
            control_plane={"traffic": {"s0000000old": 0, "s0000000new": 100}},
        )
        assert metrics.scrape_all()["scraped"] == 1
        later = json.loads(json.dumps(STATISTICS))
        add_sub = later["model_stats"][0]
        add_sub["inference_count"] += 40
        add_sub["execution_count"] += 10
        add_sub["inference_stats"]["success"]["count"] += 40
        add_sub["inference_stats"]["success"]["ns"] += 4_000_000_000
        add_sub["inference_stats"]["queue"]["ns"] += 1_000_000_000
        front.payload = later
        assert metrics.scrape_all()["scraped"] == 1
        path, headers = front.asked[-1]
        assert path == "/v2/models/stats"
        assert headers["azureml-model-deployment"] == "s0000000new"
        deployment.refresh_from_db()
        rates = set(deployment.metric_points.values_list("name", flat=True))
        if instances == 1:
            # One read covers the deployment: its counters give the charts' and the Overview's rates.
            assert rates == {"requests_per_s", "failures_per_s", "queue_ms", "compute_ms"}
        else:
            # Each read reaches one of several instances: no rate of the whole can be made of them.
            assert rates == set()
        insight = batching_insight(deployment)
        figures = {row.model: row.window for row in insight.models if row.window}
        assert figures["add_sub"].average_batch == 4.0
        assert figures["add_sub"].queue_share == pytest.approx(0.25)
        page = page_of(client, deployer, deployment)
        assert "statistics extension (inference_count, execution_count)" in page
        # The endpoint down: the scrape notes a failure, the page still shows the last read.
        front.shutdown()
        front.server_close()
        assert metrics.scrape_all()["failed"] == 1
        assert "<strong>4.0</strong>" in page_of(client, deployer, deployment)
    finally:
        front.shutdown()
        front.server_close()


def test_a_stale_last_read_is_stated(client, deployer, launch_bound):
    long_ago = timezone.now() - timedelta(hours=1)
    page = metrics_page("launch_bound", success=1, executions=1, inferences=1, request_us=10, queue_us=1)
    read(launch_bound, page, at=long_ago)
    read(launch_bound, page, at=long_ago + timedelta(minutes=1))
    assert "the figures are of then, not now" in page_of(client, deployer, launch_bound)


@pytest.mark.triton
def test_a_real_triton_without_dynamic_batching_reads_batch_one_under_eight_clients(client, deployer, cleanup):
    from concurrent.futures import ThreadPoolExecutor

    from tests import processes
    from tests.engine import endpoint_headers
    from tests.test_local_target import deploy_example

    deployment, operation = deploy_example(deployer, "batching", "launch-bound", cleanup)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert metrics.scrape_all()["scraped"] == 1  # the window's first read
    url = f"{deployment.scoring_uri}/v2/models/launch_bound/infer"
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": np.ones(16, dtype=np.float32).tolist()}
        ]
    }
    headers = endpoint_headers(deployment)

    def client_loop(_):
        with httpx.Client(timeout=30) as http:
            for _ in range(6):
                assert http.post(url, json=body, headers=headers).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client_loop, range(8)))
    metrics_url = deployment.metrics_last["source"]
    # Triton refreshes its counters about once a second: wait until they show the 48.
    processes.wait_for(
        lambda: 'nv_inference_exec_count{model="launch_bound",version="1"} 48' in httpx.get(metrics_url).text,
        within=30,
        what="Triton's counters show the 48 executions",
    )
    assert metrics.scrape_all()["scraped"] == 1
    deployment.refresh_from_db()
    (row,) = batching_insight(deployment).models
    assert row.window.executions == row.window.inferences == 48
    assert row.window.average_batch == 1.0
    assert row.window.in_flight > 1.5  # requests waited on each other: there was something to batch
    assert row.hint.startswith("Dynamic batching is off; at about ")
    assert "the average batch is 1.0" in row.hint
    page = page_of(client, deployer, deployment)
    assert "<strong>1.0</strong>" in page
    assert "Dynamic batching is off; at about" in page
