"""The SDK v1 adapter through the REAL azureml-core, against the fake control
plane (HTTP boundary only), with a real Triton behind a key-checking proxy."""

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http

from deployments.models import AuditEvent, Deployment, Operation, Registration
from deployments.services.deployments import deployment_create, deployment_delete, deployment_redeploy
from deployments.services.operations import reconcile
from deployments.services.targets import target_test_run
from tests import processes
from tests.archives import EXAMPLES
from tests.azure import azure_target, data_plane, fake_v1  # noqa: F401 - fixtures
from tests.engine import run_pending

pytestmark = [pytest.mark.django_db, pytest.mark.azure]


@pytest.fixture
def target(admin, fake_v1):  # noqa: F811
    return azure_target(
        admin,
        "azureml_v1_aks",
        fake_v1,
        compute_name="aks-gpu",
        default_resources={"gpu_cores": 1, "cpu_cores": 1, "memory_gb": 4},
    )


def settle(deployment, within=60):
    def settled():
        reconcile()
        deployment.refresh_from_db()
        return deployment.status not in (Deployment.Status.DEPLOYING, Deployment.Status.QUEUED)

    processes.wait_for(settled, within=within, what=f"{deployment.name} settled")


def test_register_deploy_healthy_infer_delete(admin, target, repository, fake_v1):  # noqa: F811
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    steps = " | ".join(step["message"] for step in operation.steps)
    assert "Model.register, framework MULTI" in steps
    # Under the line's name (the example's, "example: add_sub"), as Azure allows it.
    assert "Registered example-add_sub:1" in steps
    assert "not waiting" in steps
    assert fake_v1.create_calls == 1
    request = fake_v1.service("add-sub").request
    assert request["computeName"] == "aks-gpu"
    assert request["containerResourceRequirements"]["gpu"] == 1

    settle(deployment)
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert deployment.observed["models"] == [{"name": "add_sub", "version": "1", "ready": True, "reason": ""}]
    assert fake_v1.token_requests, "the service principal's real MSAL flow ran"

    # The scoring URI enforces the key, as Azure's does.
    base = deployment.scoring_uri.removeprefix("http://")
    assert httpx.get(f"http://{base}/v2/health/ready").status_code == 401
    client = triton_http.InferenceServerClient(base)
    inputs = [triton_http.InferInput("INPUT0", [4], "FP32"), triton_http.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(np.ones(4, dtype=np.float32))
    inputs[1].set_data_from_numpy(np.full(4, 2, dtype=np.float32))
    key = fake_v1.keys("add-sub")[0]
    result = client.infer("add_sub", inputs, headers={"Authorization": f"Bearer {key}"})
    assert result.as_numpy("OUTPUT0").tolist() == [3, 3, 3, 3]

    fake_v1.append_log("add-sub", "Triton started: add_sub READY")
    logs = run_logs(deployment)
    assert logs
    assert logs[-1].endswith("Triton started: add_sub READY")  # the service's log, through the SDK

    deployment_delete(deployment=deployment, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.DELETED
    assert "add-sub" not in fake_v1.services


def second_revision(admin, repository):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from deployments.services.repositories import repository_upload
    from tests import archives

    files = archives.add_sub_files()
    files["add_sub/1/model.py"] += b"\n# revision 2\n"
    archive = SimpleUploadedFile("r2.zip", archives.make_zip(files))
    return repository_upload(name=repository.name, archive=archive, filename="r2.zip", actor=admin).repository


def test_revisions_are_recorded_as_the_workspaces_model_versions_and_reused(admin, target, repository, fake_v1, client):  # noqa: F811
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    settle(deployment)
    first = Registration.objects.get()
    workspace = f"{fake_v1.subscription_id}/{fake_v1.resource_group}/{fake_v1.workspace_name}"
    assert (first.workspace, first.asset_type, first.label) == (workspace, "multi", "example-add_sub:1")
    assert first.repository_digest == repository.digest
    succeeded = AuditEvent.objects.filter(action="deployment.succeeded").latest("seq")
    assert succeeded.details["model"] == {"workspace": workspace, "name": "example-add_sub", "version": "1"}

    r2 = second_revision(admin, repository)
    deployment_redeploy(deployment=deployment, actor=admin, repository=r2)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    settle(deployment)
    assert Registration.objects.get(repository_digest=r2.digest).label == "example-add_sub:2"
    assert fake_v1.service("add-sub").model_ids == ["example-add_sub:2"]

    # Another deployment of revision 1 takes the version that holds it: nothing is uploaded again.
    registered = set(fake_v1.models)
    other = deployment_create(name="add-sub-again", repository=repository, target=target, actor=admin)
    operation = run_pending(other)
    assert set(fake_v1.models) == registered
    steps = [step["message"] for step in operation.steps]
    assert "Model example-add_sub:1 already holds this repository; reusing it" in steps
    assert fake_v1.service("add-sub-again").model_ids == ["example-add_sub:1"]

    client.force_login(admin)
    page = client.get(f"/lines/{repository.line_id}/").content.decode()
    assert workspace in page
    assert "example-add_sub:1" in page
    assert "example-add_sub:2" in page


def run_logs(deployment):
    from workers.targets.base import DeploymentRef
    from workers.targets.registry import adapter_for

    return adapter_for(deployment.target).logs(DeploymentRef.of(deployment), 50)


def test_a_quota_error_reaches_the_deployment_with_azures_message(admin, target, repository, fake_v1):  # noqa: F811
    fake_v1.fail_next_deploy(code="QuotaExceeded", message="Not enough GPU quota in aks-gpu.")
    deployment = deployment_create(name="no-quota", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    settle(deployment)
    assert deployment.status == Deployment.Status.FAILED
    assert "QuotaExceeded" in deployment.status_reason
    assert "Not enough GPU quota" in deployment.status_reason


def test_a_conflict_at_azure_is_retried_and_a_quota_error_is_not(admin, target, repository, fake_v1):  # noqa: F811
    # Both come back through the real azureml-core as WebserviceException; the
    # adapter boundary tells them apart by Azure's status and code.
    fake_v1.fail_next_deploy("Conflict", "Another operation is in progress.", stage="create", http_status=409)
    busy = deployment_create(name="busy", repository=repository, target=target, actor=admin)
    operation = run_pending(busy)
    assert operation.status == Operation.Status.QUEUED  # its retry is scheduled
    assert operation.error.startswith("submitting the webservice: ")
    assert "409" in operation.error
    assert "Another operation is in progress." in operation.error

    fake_v1.fail_next_deploy("QuotaExceeded", "Not enough GPU quota in aks-gpu.", stage="validate")
    starved = deployment_create(name="starved", repository=repository, target=target, actor=admin)
    operation = run_pending(starved)
    assert operation.status == Operation.Status.FAILED
    assert operation.attempts == 1
    assert "Not enough GPU quota in aks-gpu." in operation.error


def test_a_liveness_502_shows_as_unhealthy_with_the_reason(admin, target, repository, fake_v1):  # noqa: F811
    deployment = deployment_create(name="flaky", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    settle(deployment)
    assert deployment.status == Deployment.Status.HEALTHY
    fake_v1.set_unhealthy("flaky")
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.UNHEALTHY
    assert "Liveness probe failed" in deployment.status_reason
    assert "502" in deployment.status_reason


def test_a_redriven_operation_never_submits_twice(admin, target, repository, fake_v1, settings):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    settings.OPERATION_STALE_AFTER = 1
    deployment = deployment_create(name="once", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    assert fake_v1.create_calls == 1
    # As if its worker died right after Model.deploy returned.
    Operation.objects.filter(pk=operation.pk).update(
        status=Operation.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=1)
    )
    reconcile()
    again = run_pending(deployment)
    assert again.status == Operation.Status.SUCCEEDED
    assert any("not submitting again" in step["message"] for step in again.steps)
    assert fake_v1.create_calls == 1


def test_testing_the_connection_reports_workspace_and_compute(admin, target):
    result = target_test_run(target_id=target.pk, requested_by="boss")
    assert result["state"] == "ok", result
    assert "workspace triton-ws reached; compute aks-gpu" in result["message"]


def test_a_wrong_secret_fails_the_connection_test_with_azures_words(admin, target):
    from deployments.services.targets import target_update

    target_update(actor=admin, target=target, secrets={"client_secret": "wrong"})
    result = target_test_run(target_id=target.pk, requested_by="boss")
    assert result["state"] == "failed"
    assert "AADSTS7000215" in result["message"] or "invalid_client" in result["message"]


def test_entry_script_mode_deploys_score_py_with_the_triton_environment(admin, target, repository, fake_v1):  # noqa: F811
    script = (EXAMPLES.parent / "entry_scripts" / "add_sub_score.py").read_text()
    deployment = deployment_create(
        name="scored",
        repository=repository,
        target=target,
        actor=admin,
        mode="entry_script",
        entry_script=script,
        pip_packages=["tritonclient[http]==2.51.0"],
        worker_count=3,
    )
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    service = fake_v1.service("scored")
    assert service.entry_script.read_text() == script
    assert fake_v1.service("scored").environment_variables["WORKER_COUNT"] == "3"
    pip = str(service.environment)
    assert "tritonclient[http]==2.51.0" in pip
    settle(deployment)
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason


def deploy_outside_the_dashboard(fake, name: str, tmp_path):
    """What a team did before the dashboard: the guide's SDK calls, by hand."""
    import os

    from azureml.core import Workspace
    from azureml.core.authentication import ArmTokenAuthentication
    from azureml.core.model import Model
    from azureml.core.webservice import AksWebservice

    from tests.fakes.azureml.v1 import make_arm_token

    workspace = Workspace(
        fake.subscription_id,
        fake.resource_group,
        fake.workspace_name,
        auth=ArmTokenAuthentication(make_arm_token(tenant_id=fake.tenant_id), cloud="AzureCloud"),
    )
    import shutil

    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "models" / "triton")
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        model = Model.register(
            workspace=workspace, model_path="models", model_name="legacy", model_framework=Model.Framework.MULTI
        )
    finally:
        os.chdir(previous)
    config = AksWebservice.deploy_configuration(compute_target_name="aks-gpu", cpu_cores=1, memory_gb=4)
    Model.deploy(workspace, name, [model], deployment_config=config, overwrite=True)


def test_existing_webservices_are_adopted_watched_and_deletable(admin, target, fake_v1, tmp_path):  # noqa: F811
    from deployments.errors import WrongState
    from deployments.services.deployments import deployment_redeploy
    from deployments.services.targets import target_adopt_run

    deploy_outside_the_dashboard(fake_v1, "legacy-svc", tmp_path)
    assert target_adopt_run(target_id=target.pk, requested_by="boss") == ["legacy-svc"]
    assert target_adopt_run(target_id=target.pk, requested_by="boss") == []  # never twice
    deployment = Deployment.objects.get(name="legacy-svc")
    assert deployment.adopted
    assert deployment.repository_name == "adopted: legacy:1"
    settle(deployment)
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    with pytest.raises(WrongState, match="no recorded repository"):
        deployment_redeploy(deployment=deployment, actor=admin)
    deployment_delete(deployment=deployment, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert "legacy-svc" not in fake_v1.services


def test_a_deployment_timeout_at_azure_is_shown_with_its_message(admin, target, repository, fake_v1):  # noqa: F811
    fake_v1.fail_next_deploy(code="DeploymentTimedOut", message="The deployment operation timed out after 20 minutes.")
    deployment = deployment_create(name="timed-out", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    settle(deployment)
    assert deployment.status == Deployment.Status.FAILED
    assert "DeploymentTimedOut" in deployment.status_reason
    assert "timed out after 20 minutes" in deployment.status_reason


def test_a_webservice_key_is_regenerated_at_azure(admin, target, repository, fake_v1):  # noqa: F811
    from deployments.services.deployments import deployment_regenerate_key

    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    settle(deployment)
    primary, secondary = fake_v1.keys("add-sub")
    deployment_regenerate_key(deployment=deployment, actor=admin, key="secondary")
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert fake_v1.keys("add-sub")[0] == primary
    assert fake_v1.keys("add-sub")[1] != secondary
