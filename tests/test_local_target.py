"""Deployments on the local target: a real Triton Inference Server."""

import numpy as np
import pytest
import tritonclient.http as triton_http

from deployments.models import AuditEvent, Deployment, Operation
from deployments.services.deployments import deployment_create, deployment_delete, deployment_redeploy
from deployments.services.operations import reconcile
from deployments.services.repositories import repository_load_example
from tests import processes
from tests.archives import EXAMPLES
from tests.engine import endpoint_headers, local_target, run_pending
from workers.targets.base import DeploymentRef
from workers.targets.local import adapter as local
from workers.targets.local import processes as local_processes

pytestmark = [pytest.mark.django_db, pytest.mark.triton]


def deploy_example(deployer, example: str, name: str, cleanup, **spec):
    """Deploy an example repository to the local target through the engine;
    `spec` as deployment_create takes it (mode, entry_script, ...)."""
    repository = repository_load_example(path=EXAMPLES / example, actor=deployer).repository
    deployment = deployment_create(name=name, repository=repository, target=local_target(), actor=deployer, **spec)
    cleanup(deployment)
    operation = run_pending(deployment)
    return deployment, operation


def unload_until_noticed(deployment, base: str, model: str) -> None:
    """Unload `model` behind the server's back (through the endpoint, with its
    key), then run health rounds until the deployment is no longer healthy."""
    import httpx

    from deployments.health.poller import health_round

    unload = httpx.post(
        f"{base}/v2/repository/models/{model}/unload", json={}, headers=endpoint_headers(deployment), timeout=10
    )
    assert unload.status_code == 200

    def noticed():
        health_round()
        deployment.refresh_from_db()
        return deployment.status != Deployment.Status.HEALTHY

    processes.wait_for(noticed, within=30, what=f"the health poller notices {model} unloaded")


def client_for(deployment) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(deployment.scoring_uri.removeprefix("http://"))


def test_it_deploys_infers_and_deletes(deployer, cleanup):
    deployment, operation = deploy_example(deployer, "add_sub", "add-sub", cleanup)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert deployment.status == Deployment.Status.HEALTHY
    assert deployment.observed["models"] == [{"name": "add_sub", "version": "1", "ready": True, "reason": ""}]
    client = client_for(deployment)
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([10, 20, 30, 40], dtype=np.float32)
    inputs = [triton_http.InferInput("INPUT0", [4], "FP32"), triton_http.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("add_sub", inputs, headers=endpoint_headers(deployment))
    assert result.as_numpy("OUTPUT0").tolist() == [11, 22, 33, 44]
    assert result.as_numpy("OUTPUT1").tolist() == [-9, -18, -27, -36]
    assert [s["message"] for s in operation.steps][-1] == "Done"
    pid = local.read_record(deployment.pk)["pid"]

    deployment_delete(deployment=deployment, actor=deployer)
    deleted = run_pending(deployment)
    assert deleted.status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.DELETED
    assert not local_processes.is_running(local_processes.ProcessRecord(pid, local_processes.start_ticks(pid) or 0))
    assert local.read_record(deployment.pk) is None
    assert (local.workdir(deployment.pk) / "logs" / "triton.log").stat().st_size > 0  # logs kept
    actions = list(AuditEvent.objects.filter(object_type="deployments.deployment").values_list("action", flat=True))
    assert actions[::-1] == [
        "deployment.requested",
        "deployment.started",
        "deployment.succeeded",
        "deployment.status_changed",
        "deployment.delete_requested",
        "deployment.started",
        "deployment.deleted",
    ]


def test_onnx_runs_through_the_local_cpu_emulation(deployer, cleanup):
    deployment, operation = deploy_example(deployer, "onnx_classifier", "clf", cleanup)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert any("local CPU emulation" in step["message"] for step in operation.steps)
    features = triton_http.InferInput("FEATURES", [1, 4], "FP32")
    features.set_data_from_numpy(np.array([[0.0, 0.0, 5.0, 0.0]], dtype=np.float32))
    result = client_for(deployment).infer("tiny_classifier", [features], headers=endpoint_headers(deployment))
    assert int(result.as_numpy("PROBABILITIES").argmax()) == 2


def test_a_model_triton_refuses_fails_the_deploy_with_tritons_reason(deployer, cleanup, tmp_path):
    from deployments.services.repositories import repository_load_example as load

    broken = tmp_path / "crashing"
    (broken / "crash" / "1").mkdir(parents=True)
    (broken / "crash" / "config.pbtxt").write_text(
        'backend: "python"\ninput [{name: "X" data_type: TYPE_FP32 dims: [1]}]\n'
        'output [{name: "Y" data_type: TYPE_FP32 dims: [1]}]\n'
    )
    (broken / "crash" / "1" / "model.py").write_text(
        "class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('weights missing')\n"
    )
    repository = load(path=broken, actor=deployer).repository
    assert repository.status == "valid"
    deployment = deployment_create(name="crash", repository=repository, target=local_target(), actor=deployer)
    cleanup(deployment)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.FAILED
    assert deployment.status == Deployment.Status.FAILED
    assert "weights missing" in deployment.status_reason
    assert local.read_record(deployment.pk) is None  # nothing left running


def test_redeploying_the_same_spec_reattaches_without_a_second_server(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "same", cleanup)
    first = local.read_record(deployment.pk)
    deployment_redeploy(deployment=deployment, actor=deployer)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED
    assert local.read_record(deployment.pk)["pid"] == first["pid"]
    assert any("reattached" in s["message"] for s in operation.steps)
    assert len(local_processes.processes_mentioning(f"--model-repository={local.workdir(deployment.pk)}/")) == 1


def test_a_killed_server_turns_unhealthy_then_is_restarted(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "crashy", cleanup)
    record = local.read_record(deployment.pk)
    # Triton itself dies: its sandbox ends with it.
    (triton,) = local_processes.processes_mentioning(f"--model-repository={local.workdir(deployment.pk)}/")
    local_processes.stop(triton, grace=0)
    processes.wait_for(
        lambda: not local.running(local.read_record(deployment.pk)), within=30, what="the sandbox ended with its Triton"
    )
    figures = reconcile()
    assert figures["restarted"] == 1
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.UNHEALTHY
    assert deployment.restarts == 1
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED
    assert operation.reason.startswith("restart 1")
    assert deployment.status == Deployment.Status.HEALTHY
    assert local.read_record(deployment.pk)["pid"] != record["pid"]


ENTRY_SCRIPT = (EXAMPLES.parent / "entry_scripts" / "add_sub_score.py").read_text()


def test_entry_script_mode_serves_score_in_front_of_triton(deployer, cleanup):
    import httpx

    deployment, operation = deploy_example(
        deployer,
        "add_sub",
        "scored",
        cleanup,
        mode="entry_script",
        entry_script=ENTRY_SCRIPT,
        pip_packages=["numpy<2", "tritonclient"],
        worker_count=2,
    )
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert deployment.scoring_uri.endswith("/score")
    assert deployment.status == Deployment.Status.HEALTHY
    body = {"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]}
    answer = httpx.post(deployment.scoring_uri, json=body, headers=endpoint_headers(deployment), timeout=10).json()
    assert answer == {"sum": [11, 22, 33, 44], "difference": [-9, -18, -27, -36], "workers": 2}
    # WORKER_COUNT=2 workers (the second may still be booting when the first answers).
    processes.wait_for(
        lambda: "\n".join(local.LocalTarget().logs(DeploymentRef.of(deployment), 400)).count("ready for serving") == 2,
        within=30,
        what="both entry-server workers ready",
    )

    deployment_delete(deployment=deployment, actor=deployer)
    run_pending(deployment)
    assert local_processes.processes_mentioning(f"{local.workdir(deployment.pk)}/") == []


def test_missing_pip_packages_are_reported_not_installed(deployer, cleanup):
    deployment, operation = deploy_example(
        deployer,
        "add_sub",
        "needs-more",
        cleanup,
        mode="entry_script",
        entry_script=ENTRY_SCRIPT,
        pip_packages=["surely-not-a-real-package==1.0", "numpy>=99"],
    )
    assert operation.status == Operation.Status.FAILED
    assert "surely-not-a-real-package==1.0 (not installed)" in deployment.status_reason
    assert "numpy>=99 (installed: 1.26.4)" in deployment.status_reason
    assert local.read_record(deployment.pk) is None


def test_the_reconciler_marks_drift_between_running_and_desired_spec(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "drifty", cleanup)
    Deployment.objects.filter(pk=deployment.pk).update(spec_digest="f" * 64)
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.DEGRADED
    assert deployment.status_reason.startswith("drift: the target runs spec ")


def test_a_transient_error_is_retried_later_with_backoff(deployer, settings, cleanup):
    from datetime import timedelta

    from django.utils import timezone

    from deployments.services import operations

    # A real transient failure: Triton cannot load anything in no time at all.
    settings.LOCAL_TRITON_READY_TIMEOUT = 0
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="flaky", repository=repository, target=local_target(), actor=deployer)
    cleanup(deployment)
    operation = deployment.operations.get()
    before = timezone.now()
    outcome = operations.operation_execute(operation_id=operation.pk, task_id="t1")
    assert outcome.retry_in == 10
    operation.refresh_from_db()
    assert operation.status == Operation.Status.QUEUED
    assert operation.enqueued_at >= before + timedelta(seconds=outcome.retry_in)  # due when its message is
    assert operations.reconcile()["resent"] == 0  # its delayed message is not due yet
    assert operations.operation_execute(operation_id=operation.pk, task_id="t2").retry_in == 20
    assert operations.operation_execute(operation_id=operation.pk, task_id="t3").retry_in is None
    operation.refresh_from_db()
    # Still failing after the last try: the engine stops and says a person must look.
    assert operation.status == Operation.Status.NEEDS_ATTENTION
    assert operation.error.startswith("needs attention: still failing after 3 attempts: ")
    assert "LOCAL_TRITON_READY_TIMEOUT" in operation.error
    assert operation.attempts == settings.OPERATION_MAX_ATTEMPTS
    assert local_processes.processes_mentioning(f"{local.workdir(deployment.pk)}/") == []


def test_the_health_poller_shows_a_model_triton_unloaded_with_tritons_reason(deployer, cleanup):
    import httpx

    from deployments.health.poller import health_round

    deployment, _ = deploy_example(deployer, "ensemble", "partial", cleanup)
    assert deployment.status == Deployment.Status.HEALTHY
    assert health_round().changed == 0
    # A model goes away behind the server's back; the server itself stays live.
    unload_until_noticed(deployment, deployment.scoring_uri, "double")
    # Triton's own readiness fails too (a model is not ready); the poller
    # must say which one and why, rather than only "not ready".
    ready = httpx.get(f"{deployment.scoring_uri}/v2/health/ready", headers=endpoint_headers(deployment), timeout=5)
    assert ready.status_code == 400
    assert deployment.status in (Deployment.Status.DEGRADED, Deployment.Status.UNHEALTHY)
    assert "double v1 UNAVAILABLE: unloaded" in deployment.status_reason
    assert deployment.health_samples.count() >= 1


def test_metrics_from_a_real_triton_become_per_model_rates(deployer, cleanup):
    import httpx

    from deployments.health import metrics
    from deployments.models import MetricPoint

    deployment, _ = deploy_example(deployer, "add_sub", "measured", cleanup)
    url = local.LocalTarget().metrics_url(DeploymentRef.of(deployment))
    assert url.endswith("/metrics")
    gauges = metrics.parse(httpx.get(url, timeout=5).text).gauges
    assert "cpu_utilization" in gauges
    assert metrics.scrape_all()["scraped"] == 1  # the first scrape is the baseline for rates
    client = client_for(deployment)
    for _ in range(5):
        inputs = [triton_http.InferInput("INPUT0", [4], "FP32"), triton_http.InferInput("INPUT1", [4], "FP32")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.ones(4, dtype=np.float32))
        client.infer("add_sub", inputs, headers=endpoint_headers(deployment))
    # Triton refreshes its counters about once a second: wait until they show the five.
    from tests import processes

    processes.wait_for(
        lambda: 'nv_inference_request_success{model="add_sub",version="1"} 5' in httpx.get(url, timeout=5).text,
        within=30,
        what="Triton's counters show the five inferences",
    )
    deployment.refresh_from_db()
    metrics.scrape(deployment, url)
    rate = MetricPoint.objects.get(deployment=deployment, name="requests_per_s", model="add_sub")
    assert rate.value > 0
    assert MetricPoint.objects.filter(deployment=deployment, name="compute_ms", model="add_sub").exists()
    # Triton's own p95 (its latency summary over the last minute or so), kept for the Overview's tile.
    p95 = MetricPoint.objects.get(deployment=deployment, name="p95_ms", model="add_sub")
    assert 0 < p95.value < 5000
    assert metrics.series(deployment, "requests_per_s")["add_sub"][0][1] == round(rate.value, 4)


def test_the_score_console_sends_json_to_an_entry_script(deployer, cleanup, client):
    from django.urls import reverse

    from deployments.models import AuditEvent

    deployment, operation = deploy_example(
        deployer, "add_sub", "scored-console", cleanup, mode="entry_script", entry_script=ENTRY_SCRIPT
    )
    assert operation.status == Operation.Status.SUCCEEDED
    client.force_login(deployer)
    url = reverse("deployment-console", args=[deployment.pk])
    assert "JSON body for" in client.get(url).content.decode()
    answer = client.post(url, {"body": '{"a": [1, 2, 3, 4], "b": [1, 1, 1, 1]}'}, HTTP_HX_REQUEST="true")
    fragment = answer.content.decode()
    assert "HTTP 200" in fragment
    assert "[2.0, 3.0, 4.0, 5.0]" in fragment
    assert AuditEvent.objects.filter(action="console.inferred", details__model="(score)").count() == 1
    bad = client.post(url, {"body": "{not json"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400


def test_two_version_folders_under_the_default_policy_stay_healthy_after_a_health_round(deployer, cleanup, tmp_path):
    import shutil

    from deployments.health.poller import health_round

    two = tmp_path / "add_sub_two_versions"
    shutil.copytree(EXAMPLES / "add_sub", two)
    shutil.copytree(two / "add_sub" / "1", two / "add_sub" / "2")
    repository = repository_load_example(path=two, actor=deployer).repository
    deployment = deployment_create(name="two", repository=repository, target=local_target(), actor=deployer)
    cleanup(deployment)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.HEALTHY  # the deploy's own check: Triton's index
    health_round()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
