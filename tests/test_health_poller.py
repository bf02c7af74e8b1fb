"""The health poller: combination rules, fan-out behaviour, writes on change only."""

import asyncio

import pytest

from deployments import crypto
from deployments.health.poller import availability, health_round, latency_figures
from deployments.health.probes import ProbeTarget, poll_round
from deployments.health.verdict import status_from
from deployments.models import AuditEvent, Deployment, HealthSample, Operation
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import local_target
from tests.fakes.triton_sim import SimEndpoint, TritonSimulator
from workers.targets.base import ModelState, Observation

S = Deployment.Status


@pytest.mark.parametrize(
    ("observation", "status", "reason"),
    [
        (Observation(exists=False, detail="no process"), S.UNHEALTHY, "no process"),
        (Observation(exists=True, provisioning="transitioning"), S.DEPLOYING, "the target is still provisioning"),
        (
            Observation(exists=True, provisioning="failed", detail="Failed: QuotaExceeded"),
            S.FAILED,
            "Failed: QuotaExceeded",
        ),
        (Observation(exists=True, live=False, detail="no answer within 3 s"), S.UNHEALTHY, "no answer within 3 s"),
        (Observation(exists=True, live=True, ready=True), S.UNHEALTHY, "no model is loaded"),
        (Observation(exists=True, live=True, ready=True, models=[ModelState("m", "1", True)]), S.HEALTHY, ""),
        # The classic lie: the server says ready while a model is unavailable.
        (
            Observation(
                exists=True,
                live=True,
                ready=True,
                models=[ModelState("m", "1", True), ModelState("d", "2", False, "UNAVAILABLE: oom")],
            ),
            S.DEGRADED,
            "d v2 UNAVAILABLE: oom",
        ),
        (
            Observation(exists=True, live=True, ready=False, models=[ModelState("d", "1", False, "")]),
            S.UNHEALTHY,
            "d v1 not ready",
        ),
    ],
)
def test_one_status_from_provisioning_server_and_models(observation, status, reason):
    assert status_from(observation) == (status, reason)


@pytest.fixture
def simulator():
    sim = TritonSimulator().start()
    yield sim
    sim.stop()


def test_a_hung_endpoint_costs_its_timeout_and_never_blocks_the_others(simulator):
    simulator.endpoints[1] = SimEndpoint(hang=True)
    simulator.endpoints[2] = SimEndpoint(unavailable={("m", "1"): "failed to load: bad weights"})
    targets = [ProbeTarget(n, simulator.url(n), models=(("m", (1,)),)) for n in range(3)]
    results = {r.deployment_id: r for r in asyncio.run(poll_round(targets, concurrency=2, timeout=0.5))}
    assert results[1].observation.detail == "no answer within 0.5 s"
    assert results[1].latency_ms is None
    assert status_from(results[0].observation)[0] == S.HEALTHY
    assert status_from(results[2].observation) == (
        S.UNHEALTHY,
        "m v1 UNAVAILABLE: failed to load: bad weights",
    )


def test_an_endpoint_with_no_recorded_models_is_judged_by_its_server(simulator):
    """Adopted services: the poller must agree with the reconciler's probe
    (a "(server)" state), or the two would flip the status every round."""
    (result,) = asyncio.run(poll_round([ProbeTarget(0, simulator.url(0))], concurrency=1, timeout=1))
    assert [(m.name, m.ready) for m in result.observation.models] == [("(server)", True)]
    assert status_from(result.observation)[0] == S.HEALTHY


def test_probes_send_the_endpoint_key(simulator):
    simulator.endpoints[0] = SimEndpoint(key="k-123")
    good = asyncio.run(
        poll_round([ProbeTarget(0, simulator.url(0), key="k-123", models=(("m", (1,)),))], concurrency=1, timeout=1)
    )
    bad = asyncio.run(poll_round([ProbeTarget(0, simulator.url(0), key="wrong")], concurrency=1, timeout=1))
    assert status_from(good[0].observation)[0] == S.HEALTHY
    assert bad[0].observation.detail == "/v2/health/live answered HTTP 401"
    assert simulator.unauthorized == 2  # live and ready, both refused


@pytest.mark.django_db
def test_a_round_writes_only_what_changed(simulator, django_user_model):
    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    target = local_target()
    deployments = []
    for n in range(5):
        deployment = deployment_create(name=f"d{n}", repository=repository, target=target, actor=deployer)
        Deployment.objects.filter(pk=deployment.pk).update(
            status=S.HEALTHY,
            scoring_uri=simulator.url(n),
            key_encrypted=crypto.encrypt(f"key-{n}"),
            observed={"models": [{"name": "add_sub", "version": "1", "ready": True, "reason": ""}]},
        )
        simulator.endpoints[n] = SimEndpoint(key=f"key-{n}")
        deployments.append(deployment)
    Operation.objects.all().delete()  # as if their deploys were done: the poller skips busy deployments

    first = health_round()
    assert (first.checked, first.changed) == (5, 0)
    assert not HealthSample.objects.exists()
    simulator.endpoints[3] = SimEndpoint(key="key-3", unavailable={("add_sub", "1"): "unloaded"})
    second = health_round()
    assert (second.checked, second.changed) == (5, 1)
    sample = HealthSample.objects.get()
    assert (sample.deployment_id, sample.status) == (deployments[3].pk, S.UNHEALTHY)
    assert "add_sub v1 UNAVAILABLE: unloaded" in sample.reason
    assert AuditEvent.objects.filter(action="deployment.status_changed").count() == 1
    third = health_round()
    assert third.changed == 0
    assert HealthSample.objects.count() == 1
    healthy = Deployment.objects.get(pk=deployments[0].pk)
    assert healthy.checked_at is not None
    assert len(healthy.probe_latencies) == 3
    assert latency_figures(healthy)["p95"] >= latency_figures(healthy)["p50"]
    assert availability(Deployment.objects.get(pk=deployments[3].pk)) == 0.0


def test_counters_become_rates_and_a_restart_is_not_a_negative_rate():
    from deployments.health.metrics import parse, points_between

    page = """# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 120
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="m",reason="BACKEND",version="1"} 6
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="m",version="1"} 252000
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="m",version="1"} 1260000
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.25
"""
    counters, gauges, _ = parse(page)
    assert gauges == {"cpu_utilization": 0.25}
    before = {"m": {"success": 20, "failure": 2, "queue_us": 42000, "compute_us": 210000}}
    points = {(name, model): value for name, model, value in points_between(before, counters, 10)}
    assert points[("requests_per_s", "m")] == pytest.approx(10.4)  # (100 + 4) / 10 s
    assert points[("failures_per_s", "m")] == pytest.approx(0.4)
    assert points[("queue_ms", "m")] == pytest.approx(210000 / 104 / 1000)
    assert points[("compute_ms", "m")] == pytest.approx(1050000 / 104 / 1000)
    restarted = {"m": {"success": 500, "failure": 0, "queue_us": 0, "compute_us": 0}}
    assert points_between(restarted, counters, 10) == []


@pytest.mark.django_db
def test_chart_data_is_json_series_per_model_for_users_who_may_see_it(client, django_user_model, outsider):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from deployments.models import MetricPoint

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="charted", repository=repository, target=local_target(), actor=deployer)
    minute = timezone.now().replace(second=0, microsecond=0)
    for offset, value in enumerate([1.0, 2.5]):
        MetricPoint.objects.create(
            deployment=deployment,
            name="requests_per_s",
            model="add_sub",
            minute=minute - timedelta(minutes=1 - offset),
            value=value,
        )
    client.force_login(deployer)
    body = client.get(reverse("deployment-chart", args=[deployment.pk, "requests"])).json()
    assert body["unit"] == "req/s"
    assert [point[1] for point in body["series"]["add_sub requests"]] == [1.0, 2.5]
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert reverse("deployment-chart", args=[deployment.pk, "latency"]) in page
    client.force_login(outsider)
    assert client.get(reverse("deployment-chart", args=[deployment.pk, "requests"])).status_code == 404
