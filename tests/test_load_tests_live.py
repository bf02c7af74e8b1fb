"""Load tests and config searches against real Tritons on the local target,
through their endpoints, with the figures checked against Triton's own."""

import csv
import io
import threading

import httpx
import pytest
from django.db import connection

from deployments.console import infer
from deployments.loadlab import job, search
from deployments.loadlab.export import points_csv
from deployments.models import AuditEvent, ConfigSearch, Environment, LoadTest, Operation
from deployments.services.config_searches import config_search_create, config_search_make_revision
from deployments.services.deployments import deployment_create, deployment_redeploy
from deployments.services.load_tests import load_test_cancel, load_test_create
from deployments.services.operations import reconcile
from tests import processes
from tests.archives import EXAMPLES
from tests.azure import azure_target, data_plane, fake_v2, triton_url, v2_on_one_triton  # noqa: F401 - fixtures
from tests.engine import endpoint_headers, run_pending
from tests.test_local_target import deploy_example
from workers.targets.azureml_v2.adapter import azure_deployment_name
from workers.targets.local import adapter as local
from workers.targets.local import processes as local_processes

pytestmark = [pytest.mark.django_db, pytest.mark.triton]


def successes(deployment, model: str) -> int:
    """Triton's own count of successful requests for the model, through the endpoint."""
    base = infer.base_url(deployment)
    answer = httpx.get(f"{base}/v2/models/{model}/stats", headers=endpoint_headers(deployment), timeout=5)
    assert answer.status_code == 200, (answer.status_code, answer.headers, answer.text[:500])
    return sum(int(m["inference_stats"]["success"]["count"]) for m in answer.json()["model_stats"])


def test_a_sweep_reports_exactly_the_requests_triton_counted_and_its_server_side_split(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "loaded", cleanup)
    before = successes(deployment, "add_sub")
    test = load_test_create(
        deployment=deployment,
        actor=deployer,
        model="add_sub",
        # 16 clients open 16 connections at once: the endpoint's bridges must
        # take them all (socat's own backlog of 5 made the router answer 503).
        concurrency=[1, 16],
        window_seconds=0.5,
        max_trials=6,
        label="baseline",
    )
    job.run_load_test(test.pk)
    test.refresh_from_db()
    assert test.status == LoadTest.Status.SUCCEEDED, test.error
    assert [p["concurrency"] for p in test.points] == [1, 16]
    assert test.requests_sent == sum(p["requests"] for p in test.points) > 0
    assert successes(deployment, "add_sub") - before == test.requests_sent
    for point in test.points:
        assert point["errors"] == 0
        assert 0 < point["p50_ms"] <= point["p90_ms"] <= point["p95_ms"] <= point["p99_ms"]
        assert point["throughput"] > 0
        server = point["server"]
        assert server["requests"] > 0
        assert server["batch"] == 1.0
        assert {"queue_us", "compute_input_us", "compute_infer_us", "compute_output_us"} <= set(server)
    events = AuditEvent.objects.filter(object_type="deployments.loadtest", object_id=str(test.pk)).order_by("id")
    actions = list(events.values_list("action", flat=True))
    assert actions[:3] == ["loadtest.requested", "loadtest.started", "loadtest.succeeded"]
    # A second delivery of the job's message finds the test claimed and sends nothing.
    job.run_load_test(test.pk)
    assert successes(deployment, "add_sub") - before == test.requests_sent
    assert events.count() == 3
    rows = list(csv.DictReader(io.StringIO(points_csv(test))))
    assert [row["Concurrency"] for row in rows] == ["1", "16"]
    assert float(rows[0]["Inferences/Second"]) == pytest.approx(test.points[0]["throughput"], rel=1e-3)
    assert int(rows[0]["p99 latency"]) == round(test.points[0]["p99_ms"] * 1000)


ENTRY_SCRIPT = (EXAMPLES.parent / "entry_scripts" / "add_sub_score.py").read_text()


def test_direct_triton_and_entry_script_mode_are_swept_alike_and_compared(deployer, cleanup, client):
    """The seed's own comparison: the same model called directly and through
    a score.py. Each /score call is one request to the Triton behind it, so
    Triton's statistics count exactly what the sweep sent."""
    direct, _ = deploy_example(deployer, "add_sub", "direct", cleanup)
    scored = deployment_create(
        name="scored",
        repository=direct.repository,
        target=direct.target,
        actor=deployer,
        mode="entry_script",
        entry_script=ENTRY_SCRIPT,
    )
    cleanup(scored)
    run_pending(scored)
    runs = []
    for deployment, extra in ((direct, {}), (scored, {"body": '{"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]}'})):
        before = successes(deployment, "add_sub")
        test = load_test_create(
            deployment=deployment,
            actor=deployer,
            model="add_sub",
            concurrency=[1, 4],
            window_seconds=0.5,
            label=deployment.mode,
            **extra,
        )
        job.run_load_test(test.pk)
        test.refresh_from_db()
        assert test.status == LoadTest.Status.SUCCEEDED, test.error
        assert [p["errors"] for p in test.points] == [0, 0]
        assert successes(deployment, "add_sub") - before == test.requests_sent
        runs.append(test)
    assert runs[1].mode == "entry_script"
    assert all(p["server"]["requests"] > 0 for p in runs[1].points)
    client.force_login(deployer)
    page = client.get(f"/loadtests/compare/?a={runs[0].pk}&b={runs[1].pk}").content.decode()
    assert "direct Triton" in page
    assert "entry script" in page


@pytest.mark.django_db(transaction=True)
def test_a_sweep_cancelled_while_it_runs_stops_and_keeps_what_it_measured(deployer, cleanup):
    """Somebody presses Cancel once the first point is in (from another
    thread, as from a web request): the job stops within its next look."""
    deployment, _ = deploy_example(deployer, "add_sub", "cancelled", cleanup)
    test = load_test_create(
        deployment=deployment, actor=deployer, model="add_sub", concurrency=[1, 2, 4], window_seconds=0.5
    )

    def cancel_after_the_first_point():
        try:
            processes.wait_for(lambda: LoadTest.objects.get(pk=test.pk).points, within=60, what="a first point")
            load_test_cancel(test=test, actor=deployer)
        finally:
            connection.close()

    person = threading.Thread(target=cancel_after_the_first_point)
    person.start()
    job.run_load_test(test.pk)
    person.join()
    test.refresh_from_db()
    assert test.status == LoadTest.Status.CANCELLED
    assert 1 <= len(test.points) < 3
    events = AuditEvent.objects.filter(object_type="deployments.loadtest", object_id=str(test.pk))
    actions = set(events.values_list("action", flat=True))
    assert {"loadtest.cancel_requested", "loadtest.cancelled"} <= actions


def test_the_config_search_recommends_dynamic_batching_for_a_launch_bound_model_and_its_revision_deploys(
    deployer, cleanup, settings
):
    deployment, _ = deploy_example(deployer, "batching", "launch-bound", cleanup)
    found = config_search_create(
        actor=deployer,
        repository=deployment.repository,
        model="launch_bound",
        target=deployment.target,
        grid=[
            {"dynamic_batching": False, "instances": 1},
            {"dynamic_batching": True, "max_queue_delay_us": 0, "instances": 1},
        ],
        concurrency=[1, 8],
        latency_budget_ms=200,
        window_seconds=0.5,
        max_trials=5,
        deployment=deployment,
    )
    search.run_search(found.pk)
    found.refresh_from_db()
    assert found.status == ConfigSearch.Status.SUCCEEDED, found.error
    assert [r["error"] for r in found.results] == ["", ""]
    batching = found.results[1]
    assert found.best["latency"]["index"] == found.best["throughput"]["index"] == 1
    at_eight = {r["config"]["dynamic_batching"]: r["points"][-1] for r in found.results}
    assert at_eight[True]["server"]["batch"] > 2 > at_eight[False]["server"]["batch"] == 1.0
    assert at_eight[True]["throughput"] > 2 * at_eight[False]["throughput"]
    assert "dynamic_batching" in batching["config_text"]
    # Nothing of the scratch deployments is left: no process, no folder.
    assert found.scratch == []
    for index in range(2):
        scratch = search.scratch_id(found.pk, index)
        assert not local.workdir(scratch).exists()
        assert not local_processes.processes_mentioning(f"{local.workdir(scratch)}/")
    assert not search.scratch_folder(found.pk).exists()

    revision = config_search_make_revision(search=found, actor=deployer, which="latency")
    assert revision.line_id == deployment.repository.line_id
    assert revision.revision == deployment.repository.revision + 1
    assert "dynamic_batching" in revision.models.get(name="launch_bound").config_text
    deployment_redeploy(deployment=deployment, repository=revision, actor=deployer)
    run_pending(deployment)
    deployment.refresh_from_db()
    assert deployment.repository_id == revision.pk
    assert deployment.status == "healthy", deployment.status_reason


@pytest.mark.azure
def test_a_sweep_of_an_azure_v2_deployment_goes_through_its_https_endpoint_to_the_deployment_serving(
    admin,
    repository,
    v2,
):
    """Over TLS (the fake's certificate, trusted as Azure's would be), with
    the endpoint's key and the azureml-model-deployment header; Triton's
    statistics read the same way count every request the sweep sent."""
    target = azure_target(admin, "azureml_v2_managed", v2, instance_type="Standard_NC6s_v3")
    Environment.objects.filter(pk=target.environment_id).update(load_tests="allowed")
    deployment = deployment_create(name="swept", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    reconcile()
    deployment.refresh_from_db()
    assert deployment.scoring_uri.startswith("https://")
    serving = azure_deployment_name(deployment.spec_digest)
    headers = {**endpoint_headers(deployment), "azureml-model-deployment": serving}
    base = infer.base_url(deployment)

    def counted() -> int:
        stats = httpx.get(f"{base}/v2/models/add_sub/stats", headers=headers, timeout=10).json()
        return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])

    before = counted()
    test = load_test_create(
        deployment=deployment, actor=admin, model="add_sub", concurrency=[1, 2], window_seconds=0.5, max_trials=5
    )
    job.run_load_test(test.pk)
    test.refresh_from_db()
    assert test.status == LoadTest.Status.SUCCEEDED, test.error
    assert test.endpoint_deployment == serving
    assert [p["errors"] for p in test.points] == [0, 0]
    assert counted() - before == test.requests_sent
    assert all(p["server"]["requests"] > 0 for p in test.points)
