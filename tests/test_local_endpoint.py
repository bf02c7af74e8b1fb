"""The local target's endpoints, on real Tritons behind the real router:
keys, a traffic split, header routing, redeploys under load, restarts, and
deployments moved from their pre-endpoint addresses."""

import collections
import dataclasses
import json
import os
import signal
import threading
import time

import httpx
import pytest

from deployments.models import AuditEvent, Deployment, Operation
from deployments.services.deployments import deployment_redeploy, deployment_set_traffic
from deployments.services.operations import _spec, reconcile
from tests import processes
from tests.engine import endpoint_headers, run_pending
from tests.test_local_target import deploy_example, unload_until_noticed
from workers.targets.base import DeploymentRef
from workers.targets.local import adapter as local
from workers.targets.local import endpoints, router
from workers.targets.local import processes as local_processes

pytestmark = [pytest.mark.django_db, pytest.mark.triton]

BODY = {
    "inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [10, 20, 30, 40]},
    ]
}


def infer(client: httpx.Client, deployment, **headers) -> httpx.Response:
    return client.post(f"{deployment.scoring_uri}/v2/models/add_sub/infer", json=BODY, headers=headers)


def test_the_endpoint_wants_one_of_its_two_keys(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "keyed", cleanup)
    primary, secondary = local.LocalTarget(deployment.target).keys(DeploymentRef.of(deployment))
    with httpx.Client(timeout=10) as client:
        refused = infer(client, deployment)
        assert refused.status_code == 401
        assert "Authorization: Bearer" in refused.json()["error"]
        assert infer(client, deployment, Authorization="Bearer wrong").status_code == 401
        for key in (primary, secondary):
            answer = infer(client, deployment, Authorization=f"Bearer {key}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == [11, 22, 33, 44]
    # No key is written in clear: the router checks digests.
    written = "".join(p.read_text() for p in router.root().rglob("*") if p.is_file() and p.suffix != ".sock")
    written += endpoints.folder(deployment.pk).joinpath("endpoint.json").read_text()
    assert primary not in written
    assert secondary not in written


def test_a_90_10_split_lands_within_3_points_and_the_header_picks_a_deployment(deployer, cleanup):
    deployment, operation = deploy_example(deployer, "add_sub", "split", cleanup)
    baseline = local.main_deployment(deployment.pk)
    spec = _spec(deployment, operation, local.LocalTarget(deployment.target))
    candidate = dataclasses.replace(spec, spec_digest="c" * 64, candidate=True)
    local.LocalTarget(deployment.target).deploy(candidate, lambda message: None)
    other = endpoints.deployment_name(candidate.spec_digest)
    reconcile()  # the split the target reports becomes the deployment's
    deployment.refresh_from_db()
    assert deployment.observed["traffic"] == {baseline: 100, other: 0}

    deployment_set_traffic(deployment=deployment, actor=deployer, traffic={baseline: 90, other: 10})
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.observed["traffic"] == {baseline: 90, other: 10}
    headers = endpoint_headers(deployment)
    with httpx.Client(timeout=10, headers=headers) as client:
        served = collections.Counter(infer(client, deployment).headers["azureml-model-deployment"] for _ in range(1000))
        assert abs(served[other] / 1000 - 0.10) <= 0.03, served
        assert served[baseline] + served[other] == 1000
        # The header reaches the named deployment whatever the split, /v2 and all.
        for name in (baseline, other):
            assert (
                infer(client, deployment, **{"azureml-model-deployment": name}).headers["azureml-model-deployment"]
                == name
            )
        unknown = infer(client, deployment, **{"azureml-model-deployment": "nosuch"})
        assert unknown.status_code == 404
        assert "azureml-model-deployment" in unknown.json()["error"]


def test_a_redeploy_under_load_fails_no_request_and_keeps_the_address(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "steady", cleanup)
    address, before = deployment.scoring_uri, local.read_record(deployment.pk)
    headers = endpoint_headers(deployment)
    outcomes, gaps, stop = collections.Counter(), [], threading.Event()

    def load():
        last = time.monotonic()
        with httpx.Client(timeout=30, headers=headers) as client:
            while not stop.is_set():
                try:
                    answer = infer(client, deployment)
                    outcomes[answer.status_code, answer.headers.get("azureml-model-deployment")] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__, None] += 1
                    continue
                now = time.monotonic()
                gaps.append(now - last)
                last = now

    loader = threading.Thread(target=load)
    loader.start()
    try:
        deployment_redeploy(deployment=deployment, actor=deployer, changes={"worker_count": 2})
        operation = run_pending(deployment)
        time.sleep(0.5)  # a few answers from the new one
    finally:
        stop.set()
        loader.join()
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    new_name = local.main_deployment(deployment.pk)
    assert new_name != endpoints.deployment_name(before["spec_digest"])
    failed = {key: count for key, count in outcomes.items() if key[0] != 200}
    assert failed == {}
    assert {name for _, name in outcomes} == {endpoints.deployment_name(before["spec_digest"]), new_name}
    assert deployment.scoring_uri == address
    assert not local_processes.is_running(local_processes.ProcessRecord(before["pid"], before["start_ticks"]))
    assert list(endpoints.servers(deployment.pk)) == [new_name]
    print(f"redeploy under load: {sum(outcomes.values())} requests, longest gap {max(gaps) * 1000:.0f} ms")


def test_the_address_outlives_the_router_and_a_restarted_worker(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "lasting", cleanup)
    address, server = deployment.scoring_uri, local.read_record(deployment.pk)
    router_pid = router._record().pid
    os.kill(router_pid, signal.SIGKILL)
    processes.wait_for(lambda: not router.running(), within=10, what="the router is gone")
    with httpx.Client(timeout=5, headers=endpoint_headers(deployment)) as client:
        with pytest.raises(httpx.ConnectError):
            infer(client, deployment)
        # The reconciler (any worker, with nothing in memory) brings the router back on the same address.
        reconcile()
        deployment.refresh_from_db()
        assert deployment.scoring_uri == address
        assert infer(client, deployment).status_code == 200
    assert router._record().pid != router_pid
    assert local.read_record(deployment.pk)["pid"] == server["pid"]  # Triton itself was kept


def test_a_deployment_from_before_endpoints_moves_behind_one_and_says_so(deployer, cleanup):
    deployment, _ = deploy_example(deployer, "add_sub", "older", cleanup)
    # Rewrite its records as the previous version kept them: one server.json, clients on Triton's own port.
    name = local.main_deployment(deployment.pk)
    record = endpoints.read_server(deployment.pk, name)
    old_address = f"http://127.0.0.1:{record['http_port']}"
    for key in ("mode", "route_triton", "route_front", "name", "written_at"):
        record.pop(key)
    (endpoints.folder(deployment.pk) / "server.json").write_text(json.dumps(record))
    endpoints.server_path(deployment.pk, name).unlink()
    endpoints.remove(deployment.pk)
    endpoints.publish()
    Deployment.objects.filter(pk=deployment.pk).update(scoring_uri=old_address, key_encrypted="")

    reconcile()
    deployment.refresh_from_db()
    assert deployment.scoring_uri != old_address
    assert deployment.scoring_uri == endpoints.read(deployment.pk).address
    assert deployment.scoring_uri_before == old_address
    assert deployment.status == Deployment.Status.HEALTHY
    assert local.read_record(deployment.pk)["pid"] == record["pid"]  # moved, not restarted
    event = AuditEvent.objects.filter(action="deployment.address_changed").get()
    assert event.before == {"scoring_uri": old_address}
    with httpx.Client(timeout=5) as client:
        assert infer(client, deployment).status_code == 200  # open until a deploy applies the spec's auth
    assert not (endpoints.folder(deployment.pk) / "server.json").exists()


def test_a_script_that_cannot_reach_its_triton_fails_with_the_reason(deployer, cleanup):
    script = (
        "import tritonhttpclient\n\n"
        "def init():\n"
        "    global client\n"
        '    client = tritonhttpclient.InferenceServerClient(url="localhost:8001")\n'
        "    client.is_server_ready()\n\n"
        "def run(raw_data):\n"
        "    return {}\n"
    )
    deployment, operation = deploy_example(
        deployer, "add_sub", "lost", cleanup, mode="entry_script", entry_script=script
    )
    # What the operation went through, should it not fail as it should (seen once under load: queued again).
    said = (operation.status, operation.attempts, operation.error, [step.get("message") for step in operation.steps])
    assert operation.status == Operation.Status.FAILED, said
    assert deployment.status == Deployment.Status.FAILED
    assert "init() failed" in deployment.status_reason
    assert "Connection refused" in deployment.status_reason or "ConnectionRefused" in deployment.status_reason


def test_a_script_whose_init_fails_while_triton_still_loads_fails_for_the_script_not_triton(
    deployer, cleanup, tmp_path
):
    """Both servers share a sandbox and one that ends ends the other: an init()
    that raises before Triton has loaded takes Triton with it. That is the
    script's failure (permanent, its exception named), not a Triton start-up
    to try again."""
    import shutil

    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.engine import local_target

    slow = tmp_path / "slow_loading"
    shutil.copytree(EXAMPLES / "add_sub", slow)
    model = slow / "add_sub" / "1" / "model.py"
    model.write_text(
        model.read_text().replace(
            "class TritonPythonModel:\n",
            "class TritonPythonModel:\n    def initialize(self, args):\n        __import__('time').sleep(8)\n\n",
        )
    )
    repository = repository_load_example(path=slow, actor=deployer).repository
    script = "def init():\n    raise RuntimeError('no such model store')\n\ndef run(raw_data):\n    return {}\n"
    deployment = deployment_create(
        name="early",
        repository=repository,
        target=local_target(),
        actor=deployer,
        mode="entry_script",
        entry_script=script,
    )
    cleanup(deployment)
    operation = run_pending(deployment)
    said = (operation.status, operation.attempts, operation.error)
    assert operation.status == Operation.Status.FAILED, said
    assert "RuntimeError: no such model store" in operation.error
    assert "init() failed" in operation.error


def test_keys_are_shown_to_deployers_and_regenerated_one_at_a_time(deployer, viewer, cleanup, client):
    from django.urls import reverse

    from deployments.services.deployments import deployment_regenerate_key

    deployment, _ = deploy_example(deployer, "add_sub", "rekeyed", cleanup)
    primary, secondary = local.LocalTarget(deployment.target).keys(DeploymentRef.of(deployment))
    client.force_login(deployer)
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert primary not in page  # hidden until asked for
    shown = client.post(reverse("deployment-keys", args=[deployment.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert primary in shown
    assert secondary in shown
    assert AuditEvent.objects.filter(action="deployment.keys_shown", actor=deployer).exists()
    client.force_login(viewer)
    refused = client.post(reverse("deployment-keys", args=[deployment.pk]), HTTP_HX_REQUEST="true")
    assert refused.status_code == 403
    assert primary not in refused.content.decode()

    deployment_regenerate_key(deployment=deployment, actor=deployer, key="primary")
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    new_primary, same_secondary = local.LocalTarget(deployment.target).keys(DeploymentRef.of(deployment))
    assert new_primary != primary
    assert same_secondary == secondary
    with httpx.Client(timeout=10) as http:
        assert infer(http, deployment, Authorization=f"Bearer {primary}").status_code == 401
        assert infer(http, deployment, Authorization=f"Bearer {secondary}").status_code == 200
        assert infer(http, deployment, **endpoint_headers(deployment)).status_code == 200  # probes follow
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY


def test_an_entry_script_is_healthy_only_while_its_triton_is(deployer, cleanup):
    from deployments.health.poller import health_round
    from tests.test_local_target import ENTRY_SCRIPT

    deployment, operation = deploy_example(
        deployer, "add_sub", "scored-health", cleanup, mode="entry_script", entry_script=ENTRY_SCRIPT
    )
    assert operation.status == Operation.Status.SUCCEEDED
    health_round()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY
    base = deployment.scoring_uri.removesuffix("/score")
    # The script's Triton loses its model: GET / still answers, every /score would fail.
    unload_until_noticed(deployment, base, "add_sub")
    assert httpx.get(f"{base}/", headers=endpoint_headers(deployment), timeout=5).status_code == 200
    assert "(its Triton)" in deployment.status_reason
