"""Kinds of target through the registry: capabilities offered or refused by
name, errors translated once at the adapter boundary, and the engine driven
end to end on the in-memory fake kind (no Triton, no Azure)."""

import uuid

import pytest
from django.urls import reverse

from deployments.errors import Conflict
from deployments.models import AuditEvent, Deployment, Environment, Operation, Target
from deployments.services.deployments import deployment_create, deployment_delete, deployment_set_traffic
from deployments.services.operations import reconcile
from deployments.services.targets import target_create, target_update
from tests.engine import queued_tasks, run_pending
from workers.targets import registry
from workers.targets.base import Capability, DeploymentRef, TargetError
from workers.targets.fake import adapter as fake_cloud

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_fake_cloud():
    fake_cloud.reset()
    yield
    fake_cloud.reset()


@pytest.fixture
def dev():
    return Environment.objects.create(name="dev")


def fake_target(admin, dev, name="fake", **settings):
    return target_create(actor=admin, name=name, kind="fake", environment=dev, settings=settings)


def test_a_fake_deploy_runs_once_turns_healthy_and_deletes(admin, dev, repository):
    target = fake_target(admin, dev)
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=admin)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert deployment.status == Deployment.Status.HEALTHY
    assert deployment.scoring_uri == "fake://fake/add-sub"
    assert [m["name"] for m in deployment.observed["models"]] == ["add_sub"]
    # The same spec again finds it running: no second create.
    from deployments.services.deployments import deployment_redeploy

    deployment_redeploy(deployment=deployment, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert fake_cloud.CALLS[(target.pk, "create")] == 1
    deployment_delete(deployment=deployment, actor=admin)
    run_pending(deployment)
    assert deployment.status == Deployment.Status.DELETED
    assert fake_cloud.SERVICES == {}


def test_transient_failures_are_retried_and_permanent_ones_are_not(admin, dev, repository):
    flaky = fake_target(admin, dev, name="flaky", behaviour="fail_transient", transient_failures=2)
    deployment = deployment_create(name="flaky", repository=repository, target=flaky, actor=admin)
    first = run_pending(deployment)
    assert first.status == Operation.Status.QUEUED  # a retry is scheduled
    assert first.error == "deploying: (503) ServiceUnavailable: deploying (failure 1)"
    second = run_pending(deployment)
    assert (second.pk, second.attempts) == (first.pk, 2)
    assert "failure 2" in second.error
    third = run_pending(deployment)
    assert third.status == Operation.Status.SUCCEEDED
    assert fake_cloud.CALLS[(flaky.pk, "create")] == 1

    broken = fake_target(admin, dev, name="broken", behaviour="fail_permanent")
    refused = deployment_create(name="refused", repository=repository, target=broken, actor=admin)
    operation = run_pending(refused)
    assert operation.status == Operation.Status.FAILED
    assert operation.attempts == 1
    assert operation.error == "deploying: (400) ValidationError: deploying refused by the fake"
    assert refused.status == Deployment.Status.FAILED
    assert AuditEvent.objects.filter(action="deployment.failed", object_id=str(refused.pk)).count() == 1


def test_a_bug_inside_an_adapter_is_not_taken_for_the_targets_answer(admin, dev):
    target = fake_target(admin, dev)
    adapter = registry.adapter_for(target)

    def broken(*args):
        raise KeyError("our own bug")

    adapter.inner.status = broken
    with pytest.raises(KeyError):
        adapter.status(DeploymentRef(id=1, name="x"))


def test_a_fake_that_turns_unhealthy_or_drifts_is_seen_by_the_reconciler(admin, dev, repository):
    target = fake_target(admin, dev)
    deployment = deployment_create(name="watched", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    target_update(actor=admin, target=target, settings={"behaviour": "unhealthy"})
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.UNHEALTHY
    assert "switched off by the fake" in deployment.status_reason
    target_update(actor=admin, target=target, settings={"behaviour": "drift"})
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.DEGRADED
    assert deployment.status_reason.startswith("drift: the target runs spec 000000000000")


def test_a_fake_service_that_vanished_is_restarted(admin, dev, repository):
    target = fake_target(admin, dev)
    deployment = deployment_create(name="gone", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    fake_cloud.reset()
    assert reconcile()["restarted"] == 1
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.restarts == 1
    assert deployment.status == Deployment.Status.HEALTHY


def test_traffic_on_a_kind_without_it_is_refused_naming_kind_and_capability(admin, dev, repository, client, token_for):
    target = fake_target(admin, dev)
    deployment = deployment_create(name="no-split", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    with pytest.raises(registry.Unsupported) as refused:
        deployment_set_traffic(deployment=deployment, actor=admin, traffic={"a": 100})
    expected = "Fake (in memory) targets (fake) do not support a traffic split between deployments of one endpoint"
    assert refused.value.message.startswith(expected)

    answer = client.post(
        reverse("api:deployment-traffic", args=[deployment.pk]),
        {"traffic": {"a": 100}},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(admin),
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "unsupported"
    assert "(fake)" in answer.json()["errors"][0]["message"]
    assert "(traffic)" in answer.json()["errors"][0]["message"]

    client.force_login(admin)
    page = client.get(reverse("deployment", args=[deployment.pk]))
    assert b'action="/deployments/%d/traffic' % deployment.pk not in page.content
    refused_page = client.post(reverse("deployment-traffic", args=[deployment.pk]), {"traffic-a": "100"}, follow=True)
    assert "(fake) do not support a traffic split" in refused_page.content.decode()
    assert not Operation.objects.filter(kind=Operation.Kind.TRAFFIC).exists()


def test_adoption_and_logs_follow_the_kinds_capabilities(admin, dev, repository, client, token_for):
    target = fake_target(admin, dev)
    client.force_login(admin)
    page = client.get(reverse("target", args=[target.pk]))
    assert "Adopt existing webservices" not in page.content.decode()
    refused = client.post(reverse("target-adopt", args=[target.pk]), follow=True)
    assert "do not support adopting services deployed without the dashboard (adopt)" in refused.content.decode()

    deployment = deployment_create(name="logged", repository=repository, target=target, actor=admin)
    run_pending(deployment)
    logs = client.get(reverse("api:deployment-logs", args=[deployment.pk]), HTTP_AUTHORIZATION=token_for(admin))
    assert logs.status_code == 200
    assert logs.json()["lines"] == [f"created with spec {deployment.spec_digest[:12]}"]


def test_entry_script_mode_is_refused_where_the_kind_lacks_it(admin, dev, repository):
    from deployments.errors import DomainError

    managed = target_create(
        actor=admin,
        name="managed",
        kind="azureml_v2_managed",
        environment=dev,
        auth_method="azure_cli",
        settings={
            "subscription_id": "00000000-0000-0000-0000-000000000001",
            "resource_group": "rg",
            "workspace_name": "ws",
            "instance_type": "Standard_NC6s_v3",
        },
    )
    with pytest.raises(DomainError) as refused:
        deployment_create(
            name="scored",
            repository=repository,
            target=managed,
            actor=admin,
            mode="entry_script",
            entry_script="def init():\n    pass\n\ndef run(data):\n    return data\n",
        )
    assert "(azureml_v2_managed) do not support entry-script (score.py) mode (entry_script)" in refused.value.message
    assert not Deployment.objects.exists()


def test_the_boundary_refuses_a_capability_method_the_kind_lacks(admin, dev):
    adapter = registry.adapter_for(fake_target(admin, dev))
    with pytest.raises(TargetError) as refused:
        adapter.set_traffic(DeploymentRef(id=1, name="x"), {"a": 100}, lambda message: None)
    assert refused.value.permanent
    assert "Fake (in memory) targets (fake) do not support a traffic split" in refused.value.message


def test_test_only_kinds_are_offered_to_tests_and_debug_only(settings, admin, dev):
    assert "fake" in {kind.name for kind in registry.offered()}
    settings.TARGET_TEST_KINDS = False
    settings.DEBUG = False
    assert "fake" not in {kind.name for kind in registry.offered()}
    from deployments.errors import DomainError

    with pytest.raises(DomainError) as refused:
        fake_target(admin, dev)
    assert refused.value.path == "kind"
    assert not Target.objects.exists()


def test_kind_settings_are_checked_by_the_kinds_descriptor(admin, dev):
    from deployments.errors import DomainError

    with pytest.raises(DomainError) as refused:
        fake_target(admin, dev, behaviour="explode")
    assert refused.value.path == "settings.behaviour"
    with pytest.raises(DomainError) as refused:
        fake_target(admin, dev, compute_name="aks")
    assert refused.value.path == "settings.compute_name"
    with pytest.raises(DomainError) as refused:
        target_create(actor=admin, name="x", kind="fake", environment=dev, auth_method="service_principal")
    assert refused.value.path == "auth_method"


def test_a_second_target_of_one_name_is_a_conflict(admin, dev):
    fake_target(admin, dev, name="twice")
    with pytest.raises(Conflict):
        fake_target(admin, dev, name="twice")


def test_capabilities_are_what_the_pages_read(admin, dev):
    target = fake_target(admin, dev)
    assert target.capabilities == {"logs", "restart", "entry_script"}
    assert Capability.TRAFFIC not in target.descriptor.capabilities
    assert target.kind_label == "Fake (in memory)"
    assert target.where == "in memory, succeed"


def test_another_hosts_local_servers_are_left_to_that_hosts_worker(
    admin, dev, repository, settings, django_capture_on_commit_callbacks
):
    host = f"far-{uuid.uuid4().hex[:8]}"  # a queue no earlier run has filled
    target = target_create(actor=admin, name="far", kind="local", environment=dev, settings={"host": host})
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_create(name="remote", repository=repository, target=target, actor=admin)
    assert queued_tasks(f"host.{host}") == ["workers.run_operation"]

    # What a worker on this host would find: the servers are not its to touch.
    with pytest.raises(TargetError) as refused:
        registry.adapter_for(target).status(DeploymentRef.of(deployment))
    assert not refused.value.permanent
    assert f"runs its servers on host {host}; this worker is on {settings.WORKER_HOST}" in refused.value.message

    Operation.objects.filter(deployment=deployment).update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    figures = reconcile()
    assert figures["observed"] == 0
    assert queued_tasks(f"host.{host}") == ["workers.run_operation", "workers.observe_host"]


def test_the_console_asks_for_the_role_in_the_deployments_environment(
    admin, dev, repository, client, token_for, django_user_model
):
    from deployments import roles
    from deployments.models import EnvironmentMembership
    from tests.conftest import make_user

    prod = Environment.objects.create(name="prod")
    in_dev = deployment_create(name="dev-one", repository=repository, target=fake_target(admin, dev), actor=admin)
    in_prod = deployment_create(
        name="prod-one", repository=repository, target=fake_target(admin, prod, name="fake-prod"), actor=admin
    )
    # Watches everything, deploys in dev only.
    member = make_user(django_user_model, "dev-deployer", roles.VIEWER)
    EnvironmentMembership.objects.create(user=member, environment=dev, role=roles.DEPLOYER)
    body = {"model": "add_sub", "inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1], "data": [1]}]}
    header = token_for(member)

    def infer(deployment):
        url = reverse("api:deployment-infer", args=[deployment.pk])
        return client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=header)

    allowed = infer(in_dev)  # past the permission check: nothing answers yet
    assert allowed.status_code == 409, allowed.json()
    assert "nothing answers yet" in allowed.json()["errors"][0]["message"]
    refused = infer(in_prod)
    assert refused.status_code == 403
    assert "in prod needs the deployer or admin role" in refused.json()["errors"][0]["message"]
    client.force_login(member)
    assert client.get(reverse("deployment-console", args=[in_prod.pk])).status_code == 403


def test_every_page_of_a_local_target_warns_while_its_sandbox_is_off(admin, dev, repository, client, settings):
    target = target_create(actor=admin, name="open", kind="local", environment=dev)
    deployment = deployment_create(name="open-one", repository=repository, target=target, actor=admin)
    client.force_login(admin)
    pages = [reverse("targets"), reverse("target", args=[target.pk]), reverse("deployment", args=[deployment.pk])]
    for page in pages:
        assert "LOCAL_TARGET_SANDBOX is off" not in client.get(page).content.decode()
    settings.LOCAL_TARGET_SANDBOX = False
    for page in pages:
        assert "LOCAL_TARGET_SANDBOX is off" in client.get(page).content.decode(), page


def test_a_switched_off_local_target_is_neither_offered_nor_deployed(admin, dev, repository, settings):
    target = target_create(actor=admin, name="before", kind="local", environment=dev)
    deployment = deployment_create(name="late", repository=repository, target=target, actor=admin)
    settings.LOCAL_TARGET_ENABLED = False  # production's default
    assert "local" not in {kind.name for kind in registry.offered()}
    from deployments.errors import DomainError

    with pytest.raises(DomainError) as refused:
        target_create(actor=admin, name="after", kind="local", environment=dev)
    assert refused.value.path == "kind"
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.FAILED
    assert "LOCAL_TARGET_ENABLED=false" in operation.error


def test_a_target_of_a_kind_no_longer_offered_still_shows_its_own_kind(admin, dev, client, settings):
    target = target_create(actor=admin, name="old-box", kind="local", environment=dev)
    settings.LOCAL_TARGET_ENABLED = False
    client.force_login(admin)
    page = client.get(reverse("target", args=[target.pk])).content.decode()
    assert '<option value="local" selected>Local Triton</option>' in page
    assert "Azure ML" not in page.split('name="kind"')[1].split("</select>")[0]
