"""The SDK v2 adapter through the REAL azure-ai-ml and azure-identity, against
the fake control plane (HTTPS on 127.0.0.1), with real Tritons behind the
fake's scoring front end (one key-checking address per endpoint) as the data plane."""

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http

from deployments.models import AuditEvent, Deployment, Operation, Registration
from deployments.services.deployments import deployment_create, deployment_delete, deployment_redeploy
from deployments.services.operations import reconcile
from deployments.services.targets import target_test_run
from tests.azure import azure_target, data_plane, fake_v2  # noqa: F401 - fixtures
from tests.engine import run_pending
from workers.targets.azureml_v2.adapter import azure_deployment_name

pytestmark = [pytest.mark.django_db, pytest.mark.azure]


def v2_target(admin, fake, kind="azureml_v2_kubernetes"):
    extra = {"compute_name": "aks-gpu"} if kind == "azureml_v2_kubernetes" else {}
    return azure_target(admin, kind, fake, instance_type="defaultinstancetype", **extra)


def infer(deployment, key, fake):
    # The endpoint's one address (https, the fake's CA), with Triton's API under the scoring URI's parent.
    base = deployment.scoring_uri.removeprefix("https://").removesuffix("/score")
    client = triton_http.InferenceServerClient(base, ssl=True, ssl_options={"ca_certs": fake.ca_bundle_path})
    inputs = [triton_http.InferInput("INPUT0", [4], "FP32"), triton_http.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(np.arange(4, dtype=np.float32))
    inputs[1].set_data_from_numpy(np.ones(4, dtype=np.float32))
    return client.infer("add_sub", inputs, headers={"Authorization": f"Bearer {key}"}).as_numpy("OUTPUT0").tolist()


def test_kubernetes_endpoint_register_deploy_infer_rollout_delete(admin, repository, fake_v2):  # noqa: F811
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    steps = " | ".join(s["message"] for s in operation.steps)
    assert "Registering the repository as triton_model example-add_sub" in steps
    assert "takes 100% of the traffic" in steps
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert fake_v2.create_calls == 1
    assert fake_v2.token_requests, "azure-identity's real client-secret flow ran"
    assert httpx.get(deployment.scoring_uri.removesuffix("/score") + "/v2/health/ready").status_code == 401
    assert deployment.scoring_uri == fake_v2.scoring_uri("add-sub")
    assert infer(deployment, fake_v2.keys("add-sub").primary, fake_v2) == [1, 2, 3, 4]

    # A changed spec is a second Azure deployment at 0% traffic: the first keeps serving.
    first = azure_deployment_name(deployment.spec_digest)
    deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    second = azure_deployment_name(deployment.spec_digest)
    assert any(f"{second} has 0% of the traffic" in s["message"] for s in operation.steps)
    assert fake_v2.endpoint("add-sub")["properties"]["traffic"] == {first: 100}

    deployment_delete(deployment=deployment, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.DELETED


def test_a_revision_is_registered_once_per_workspace_and_its_version_recorded(admin, repository, fake_v2):  # noqa: F811
    from tests.test_azureml_v1 import second_revision

    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    recorded = Registration.objects.get()
    assert (recorded.asset_type, recorded.label) == ("triton_model", "example-add_sub:1")

    r2 = second_revision(admin, repository)
    deployment_redeploy(deployment=deployment, actor=admin, repository=r2)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert Registration.objects.get(repository_digest=r2.digest).label == "example-add_sub:2"

    # A second endpoint serving revision 1 reads the recorded version instead of registering again.
    other = deployment_create(name="add-sub-b", repository=repository, target=target, actor=admin)
    operation = run_pending(other)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert fake_v2.model_versions() == ["example-add_sub:1", "example-add_sub:2"]
    steps = [step["message"] for step in operation.steps]
    assert "Model example-add_sub:1 already holds this repository; reusing it" in steps


def test_a_quota_error_fails_the_deploy_with_azures_message(admin, repository, fake_v2):  # noqa: F811
    target = v2_target(admin, fake_v2)
    fake_v2.fail_next_deploy(code="QuotaExceeded", message="Not enough quota for defaultinstancetype.")
    deployment = deployment_create(name="no-quota", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.FAILED
    assert operation.attempts == 1  # a quota error is not retried
    assert "QuotaExceeded" in deployment.status_reason
    assert "Not enough quota" in deployment.status_reason


def test_a_busy_endpoint_is_retried_and_a_refused_one_is_not(admin, repository, fake_v2):  # noqa: F811
    # ARM answers through the real azure-ai-ml as HttpResponseError; 409 (an
    # operation in progress) is worth a retry, 403 (no permission) is not.
    target = v2_target(admin, fake_v2)
    fake_v2.fail_next_request("PUT", "onlineEndpoints/busy", 409, "Conflict", "An operation is in progress.")
    busy = deployment_create(name="busy", repository=repository, target=target, actor=admin)
    operation = run_pending(busy)
    assert operation.status == Operation.Status.QUEUED  # its retry is scheduled
    assert operation.error.startswith("creating the endpoint: ")
    assert "An operation is in progress." in operation.error

    fake_v2.fail_next_request("PUT", "onlineEndpoints/denied", 403, "AuthorizationFailed", "No permission to write.")
    denied = deployment_create(name="denied", repository=repository, target=target, actor=admin)
    operation = run_pending(denied)
    assert operation.status == Operation.Status.FAILED
    assert operation.attempts == 1
    assert "No permission to write." in operation.error


def test_a_managed_endpoint_deploys_too(admin, repository, fake_v2):  # noqa: F811
    target = v2_target(admin, fake_v2, kind="azureml_v2_managed")
    deployment = deployment_create(name="managed", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY


def test_testing_a_v2_connection_reads_the_workspace(admin, fake_v2):  # noqa: F811
    target = v2_target(admin, fake_v2)
    result = target_test_run(target_id=target.pk, requested_by="boss")
    assert result["state"] == "ok", result
    assert "reached; deploys to compute aks-gpu" in result["message"]


def test_traffic_shifts_gradually_and_rolls_back(admin, repository, fake_v2, client, token_for):  # noqa: F811
    from django.urls import reverse

    from deployments.models import AuditEvent, Environment

    Environment.objects.filter(name="prod").update(approvals_required=0)
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="rollout", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    blue = azure_deployment_name(deployment.spec_digest)
    deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
    run_pending(deployment)
    green = azure_deployment_name(deployment.spec_digest)
    assert deployment.observed["traffic"] == {blue: 100, green: 0}

    # 10% to the new one, through the API.
    response = client.post(
        reverse("api:deployment-traffic", args=[deployment.pk]),
        {"traffic": {blue: 90, green: 10}},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(admin),
    )
    assert response.status_code == 202, response.content
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert fake_v2.endpoint("rollout")["properties"]["traffic"] == {blue: 90, green: 10}
    assert deployment.observed["traffic"] == {blue: 90, green: 10}

    # A split that does not add up is refused, naming the problem.
    bad = client.post(
        reverse("api:deployment-traffic", args=[deployment.pk]),
        {"traffic": {blue: 50, green: 10}},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(admin),
    )
    assert bad.status_code == 400
    assert "add up to 60%" in bad.json()["errors"][0]["message"]

    # Roll back from the page: 100% to the previous deployment.
    client.force_login(admin)
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert f'name="traffic-{green}" value="10"' in page
    rollback = {f"traffic-{blue}": "90", f"traffic-{green}": "10", "all_to": blue}
    asked = client.post(reverse("deployment-traffic", args=[deployment.pk]), rollback)
    assert f"{green} will get no more requests" in asked.content.decode()  # 0% is confirmed first
    client.post(reverse("deployment-traffic", args=[deployment.pk]), {**rollback, "confirmed": "1"})
    run_pending(deployment)
    assert fake_v2.endpoint("rollout")["properties"]["traffic"] == {blue: 100}
    changes = AuditEvent.objects.filter(action="deployment.traffic_changed").order_by("seq")
    assert [e.after["traffic"] for e in changes] == [{blue: 90, green: 10}, {blue: 100, green: 0}]


def test_traffic_changes_wait_for_approvals_where_the_environment_requires_them(
    admin,
    repository,
    fake_v2,  # noqa: F811
    django_user_model,
):
    from deployments.models import Environment
    from deployments.services.approvals import deployment_approve
    from deployments.services.deployments import deployment_set_traffic
    from tests.conftest import make_user

    Environment.objects.filter(name="prod").update(approvals_required=0)
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="guarded", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    blue = azure_deployment_name(deployment.spec_digest)
    deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
    run_pending(deployment)
    green = azure_deployment_name(deployment.spec_digest)
    Environment.objects.filter(name="prod").update(approvals_required=1)
    deployment = Deployment.objects.select_related("target__environment").get(pk=deployment.pk)

    deployment_set_traffic(deployment=deployment, actor=admin, traffic={blue: 50, green: 50})
    assert not deployment.operations.filter(status=Operation.Status.QUEUED).exists()
    request = deployment.requests.get(status="pending")
    assert (request.kind, request.params) == ("traffic", {"traffic": {blue: 50, green: 50}})
    assert fake_v2.endpoint("guarded")["properties"]["traffic"] == {blue: 100}  # unchanged while it waits

    deployment_approve(deploy_request=request, actor=make_user(django_user_model, "approver", "approver"))
    operation = run_pending(deployment)
    assert (operation.kind, operation.status) == ("traffic", Operation.Status.SUCCEEDED)
    assert fake_v2.endpoint("guarded")["properties"]["traffic"] == {blue: 50, green: 50}


def test_when_our_wait_ends_first_the_operation_looks_again_and_gives_the_traffic(admin, repository, fake_v2, settings):  # noqa: F811
    settings.AZUREML_V2_DEPLOY_WAIT = 0
    fake_v2.in_progress_polls = 3
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="slow", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    # Not failed, not succeeded: looked at again later, and not counted as a try.
    assert operation.status == Operation.Status.QUEUED
    assert (operation.attempts, operation.waits) == (1, 1)
    assert "still provisioning; looking again in 30 s" in operation.steps[-1]["message"]
    assert deployment.status == Deployment.Status.DEPLOYING
    fake_v2.wait_idle()
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    steps = [step["message"] for step in operation.steps]
    assert any("already submitted by this operation; not submitting again" in step for step in steps)
    assert any("takes 100% of the traffic" in step for step in steps)  # the first deployment gets the traffic
    assert fake_v2.create_calls == 1
    # Looking again changed nothing: one "started" event, not one per look.
    assert AuditEvent.objects.filter(action="deployment.started", object_id=str(deployment.pk)).count() == 1
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason


def test_a_regenerated_key_replaces_the_old_one_and_the_other_keeps_working(admin, repository, fake_v2):  # noqa: F811
    from deployments.models import AuditEvent
    from deployments.services.deployments import deployment_regenerate_key, deployment_reveal_keys

    deployment = deployment_create(name="add-sub", repository=repository, target=v2_target(admin, fake_v2), actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    old = fake_v2.keys("add-sub")
    assert deployment_reveal_keys(deployment=deployment, actor=admin) == [old.primary, old.secondary]

    deployment_regenerate_key(deployment=deployment, actor=admin, key="primary")
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    new = fake_v2.keys("add-sub")
    assert new.primary != old.primary
    assert new.secondary == old.secondary
    # The probes' key follows (the poller would otherwise be refused).
    assert deployment_reveal_keys(deployment=deployment, actor=admin) == [new.primary, new.secondary]
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert infer(deployment, new.secondary, fake_v2) == [1, 2, 3, 4]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"deployment.key_regeneration_requested", "deployment.key_regenerated", "deployment.keys_shown"} <= actions
