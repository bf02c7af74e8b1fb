"""Model lines: numbered revisions of a repository name, deployments that move
between revisions, and promotion across environments."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from deployments.errors import Ambiguous, Conflict, DomainError, WrongState
from deployments.models import AuditEvent, Deployment, Environment, ModelLine, ModelRepository
from deployments.services.approvals import deployment_approve
from deployments.services.deployments import deployment_create, deployment_redeploy
from deployments.services.promotion import deployment_promote
from deployments.services.repositories import repository_delete, repository_upload
from deployments.services.targets import target_create
from tests import archives
from tests.conftest import make_user
from tests.engine import run_pending
from workers.targets.fake import adapter as fake

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fake_cloud():
    fake.reset()
    yield
    fake.reset()


@pytest.fixture
def dev(admin):
    environment = Environment.objects.create(name="dev")
    return target_create(actor=admin, name="fake-dev", kind="fake", environment=environment)


@pytest.fixture
def prod(admin):
    environment = Environment.objects.create(name="prod", approvals_required=1)
    return target_create(actor=admin, name="fake-prod", kind="fake", environment=environment)


def v2_files() -> dict[str, bytes]:
    files = archives.add_sub_files()
    files["add_sub/config.pbtxt"] = files["add_sub/config.pbtxt"].replace(b"dims: [ 4 ]", b"dims: [ 8 ]", 1)
    files["add_sub/1/model.py"] += b"\n# v2\n"
    files["add_sub/2/model.py"] = files["add_sub/1/model.py"]
    return files


def upload(actor, files, name="add-sub"):
    data = archives.make_zip(files)
    return repository_upload(name=name, archive=SimpleUploadedFile("r.zip", data), filename="r.zip", actor=actor)


@pytest.fixture
def v1(requester):
    return upload(requester, archives.add_sub_files()).repository


@pytest.fixture
def v2(requester, v1):
    return upload(requester, v2_files()).repository


def running(name, repository, target, actor) -> Deployment:
    deployment = deployment_create(name=name, repository=repository, target=target, actor=actor)
    run_pending(deployment)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    return deployment


# --- revisions ---------------------------------------------------------------------------


def test_uploads_under_one_name_become_numbered_revisions_of_one_line(requester, v1, v2):
    assert (v1.revision, v2.revision) == (1, 2)
    assert v1.line == v2.line
    assert v1.line.name == "add-sub"
    assert str(v2).startswith("add-sub r2 ")


def test_identical_content_returns_the_existing_revision(requester, v1, v2):
    again = upload(requester, archives.add_sub_files())
    assert not again.created
    assert again.repository == v1
    assert ModelRepository.objects.filter(line=v1.line).count() == 2


def test_identical_content_under_another_name_is_another_line_sharing_the_files(
    requester, v1, django_capture_on_commit_callbacks
):
    other = upload(requester, archives.add_sub_files(), name="calculator").repository
    assert other.line != v1.line
    assert other.revision == 1
    assert other.storage_dir == v1.storage_dir
    admin = make_admin(requester)
    with django_capture_on_commit_callbacks(execute=True):
        repository_delete(repository=other, actor=admin)
    assert v1.path.is_dir(), "the other line's revision still needs the shared files"
    with django_capture_on_commit_callbacks(execute=True):
        repository_delete(repository=v1, actor=admin)
    assert not v1.path.exists(), "the last revision holding them takes the files along"


def make_admin(user):
    user.is_superuser = True
    user.save()
    return user


def test_revision_numbers_are_never_handed_out_twice(client, requester, v1, v2):
    admin = make_admin(requester)
    repository_delete(repository=v2, actor=admin)
    third = upload(requester, v2_files()).repository
    assert third.revision == 3
    for revision in (v1, third):
        repository_delete(repository=revision, actor=admin)
    client.force_login(admin)
    page = client.get(reverse("line", args=[v1.line_id])).content.decode()
    assert "Every revision of add-sub was deleted" in page


def test_health_expects_only_the_versions_triton_serves(v2):
    from workers.targets.base import DeploymentRef

    (model,) = v2.models.all()
    assert model.versions == [1, 2]
    # No version_policy: Triton loads the latest version only, so v1 is not "not ready".
    assert model.served_versions == [2]
    deployment = Deployment(pk=1, name="x", repository=v2)
    assert DeploymentRef.of(deployment).models == (("add_sub", (2,)),)


# --- moving a deployment between revisions -------------------------------------------------


def test_a_redeploy_through_the_api_moves_to_the_next_revision_with_a_new_spec_digest(
    client, requester, token_for, v1, v2, dev
):
    deployment = running("add-sub", v1, dev, requester)
    answer = client.post(
        reverse("api:deployment-redeploy", args=[deployment.pk]),
        {"repository": v2.pk},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["repository"] == {"id": v2.pk, "name": "add-sub", "revision": 2, "digest": v2.digest}
    assert body["spec_digest"] != deployment.spec_digest
    run_pending(deployment)
    assert deployment.status == Deployment.Status.HEALTHY
    assert fake.SERVICES[(dev.pk, "add-sub")].spec_digest == body["spec_digest"]
    event = AuditEvent.objects.filter(action="deployment.redeploy_requested").latest("seq")
    assert (event.before["repository_revision"], event.after["repository_revision"]) == (1, 2)


def test_in_prod_the_new_revision_waits_for_approval_and_the_old_one_keeps_running(requester, approver, v1, v2, prod):
    deployment = deployment_create(name="add-sub", repository=v1, target=prod, actor=requester)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    first_digest = deployment.spec_digest

    deployment_redeploy(deployment=deployment, actor=requester, repository=v2)
    deployment.refresh_from_db()
    assert (deployment.repository, deployment.spec_digest) == (v1, first_digest)
    assert deployment.status == Deployment.Status.HEALTHY
    assert fake.SERVICES[(prod.pk, "add-sub")].spec_digest == first_digest
    request = deployment.requests.get(status="pending")
    assert request.spec["repository_revision"] == 2
    assert request.current["repository_revision"] == 1

    deployment_approve(deploy_request=request, actor=approver)
    run_pending(deployment)
    assert (deployment.repository, deployment.repository_revision) == (v2, 2)
    assert fake.SERVICES[(prod.pk, "add-sub")].spec_digest == deployment.spec_digest != first_digest


def test_the_approval_page_shows_the_revision_diff(client, requester, approver, v1, v2, prod):
    deployment = deployment_create(name="add-sub", repository=v1, target=prod, actor=requester)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    deployment_redeploy(deployment=deployment, actor=requester, repository=v2)
    client.force_login(approver)
    page = client.get(reverse("approval", args=[deployment.requests.get(status="pending").pk])).content.decode()
    assert "added add_sub v2" in page
    assert "changed add_sub v1" in page
    assert "input INPUT0: FP32 [4] → FP32 [8]" in page
    assert "+  { name: &quot;INPUT0&quot; data_type: TYPE_FP32 dims: [ 8 ] }," in page


def test_another_lines_revision_needs_an_explicit_confirmation(client, requester, token_for, v1, dev):
    other = upload(requester, v2_files(), name="calculator").repository
    deployment = running("add-sub", v1, dev, requester)
    url = reverse("api:deployment-redeploy", args=[deployment.pk])
    refused = client.post(
        url, {"repository": other.pk}, content_type="application/json", HTTP_AUTHORIZATION=token_for(requester)
    )
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert (error["code"], error["path"]) == ("other_line", "confirm_other_line")
    deployment.refresh_from_db()
    assert deployment.repository == v1
    moved = client.post(
        url,
        {"repository": "calculator", "confirm_other_line": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert moved.status_code == 202, moved.content
    assert moved.json()["repository"]["name"] == "calculator"


def test_an_invalid_revision_is_refused_naming_the_field(requester, v1, dev):
    deployment = running("add-sub", v1, dev, requester)
    broken = upload(requester, archives.tree_of(archives.EXAMPLES / "broken")).repository
    assert broken.status == "invalid"
    with pytest.raises(DomainError, match="add-sub r2 is invalid") as refused:
        deployment_redeploy(deployment=deployment, actor=requester, repository=broken)
    assert refused.value.path == "repository"


# --- promotion ------------------------------------------------------------------------------


def test_promotion_to_prod_needs_an_approver_there_and_deploys_the_same_content_and_spec(
    client, requester, approver, token_for, v1, dev, prod
):
    source = running("add-sub", v1, dev, requester)
    deployment_redeploy(deployment=source, actor=requester, changes={"worker_count": 3})
    run_pending(source)
    answer = client.post(
        reverse("api:deployment-promote", args=[source.pk]),
        {"environment": "prod"},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert answer.status_code == 201, answer.content
    promoted = Deployment.objects.get(pk=answer.json()["id"])
    assert promoted.target == prod
    assert promoted.status == Deployment.Status.PENDING_APPROVAL
    assert (promoted.repository_digest, promoted.worker_count) == (source.repository_digest, 3)
    assert promoted.spec_digest != source.spec_digest  # the target is part of it
    request = promoted.requests.get(status="pending")
    assert request.spec["promoted_from"]["deployment"] == source.pk
    deployment_approve(deploy_request=request, actor=approver)
    run_pending(promoted)
    assert promoted.status == Deployment.Status.HEALTHY
    event = AuditEvent.objects.get(action="deployment.promoted")
    assert event.details["to_deployment"] == promoted.pk
    assert event.details["repository_revision"] == 1


def test_promoting_again_updates_the_lines_deployment_there(requester, approver, v1, v2, dev, prod):
    source = running("add-sub", v1, dev, requester)
    first = deployment_promote(deployment=source, environment=prod.environment, actor=requester)
    deployment_approve(deploy_request=first.deployment.requests.get(status="pending"), actor=approver)
    run_pending(first.deployment)
    deployment_redeploy(deployment=source, actor=requester, repository=v2)
    run_pending(source)

    again = deployment_promote(deployment=source, environment=prod.environment, actor=requester)
    assert not again.created
    assert again.deployment.pk == first.deployment.pk
    request = again.deployment.requests.get(status="pending")
    assert (request.current["repository_revision"], request.spec["repository_revision"]) == (1, 2)


def test_several_candidates_there_answer_409_listing_them(client, requester, token_for, admin, v1, dev, prod):
    source = running("add-sub", v1, dev, requester)
    other = target_create(actor=admin, name="fake-prod-2", kind="fake", environment=prod.environment)
    for target in (prod, other):
        Deployment.objects.create(
            name="add-sub",
            repository=v1,
            repository_name=v1.name,
            repository_revision=1,
            repository_digest=v1.digest,
            target=target,
            spec_digest="x",
            status=Deployment.Status.HEALTHY,
        )
    url = reverse("api:deployment-promote", args=[source.pk])
    answer = client.post(
        url, {"environment": "prod"}, content_type="application/json", HTTP_AUTHORIZATION=token_for(requester)
    )
    assert answer.status_code == 409
    (error,) = answer.json()["errors"]
    assert (error["code"], error["path"]) == ("ambiguous", "deployment")
    assert len(error["choices"]) == 2
    picked = client.post(
        url,
        {"environment": "prod", "deployment": error["choices"][1]["id"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert picked.status_code == 202, picked.content
    assert picked.json()["id"] == error["choices"][1]["id"]


def test_a_name_taken_by_another_line_is_a_conflict(requester, v1, dev, prod):
    source = running("add-sub", v1, dev, requester)
    other = upload(requester, v2_files(), name="calculator").repository
    deployment_create(name="add-sub", repository=other, target=prod, actor=requester)
    with pytest.raises(Conflict, match="another name") as refused:
        deployment_promote(deployment=source, environment=prod.environment, actor=requester)
    assert refused.value.path == "name"
    renamed = deployment_promote(deployment=source, environment=prod.environment, actor=requester, name="add-sub-2")
    assert renamed.created
    assert renamed.deployment.name == "add-sub-2"


def test_promotion_to_an_environment_without_a_usable_target_names_it(requester, v1, dev):
    source = running("add-sub", v1, dev, requester)
    empty = Environment.objects.create(name="staging")
    with pytest.raises(DomainError, match="staging has no target") as refused:
        deployment_promote(deployment=source, environment=empty, actor=make_admin(requester))
    assert refused.value.path == "environment"


def test_an_unhealthy_deployment_is_promoted_only_with_force_and_the_force_is_audited(requester, v1, dev, prod):
    source = running("add-sub", v1, dev, requester)
    Deployment.objects.filter(pk=source.pk).update(
        status=Deployment.Status.DEGRADED, status_reason="add_sub v1 not ready"
    )
    with pytest.raises(WrongState, match="add_sub v1 not ready") as refused:
        deployment_promote(deployment=source, environment=prod.environment, actor=requester)
    assert (refused.value.code, refused.value.path) == ("not_healthy", "force")
    assert not Deployment.objects.filter(target=prod).exists()
    deployment_promote(deployment=source, environment=prod.environment, actor=requester, force=True)
    event = AuditEvent.objects.get(action="deployment.promoted")
    assert event.details["forced"] is True
    assert "degraded" in event.details["forced_because"]


def test_several_usable_targets_for_a_new_deployment_are_listed(requester, admin, v1, dev, prod):
    source = running("add-sub", v1, dev, requester)
    target_create(actor=admin, name="fake-prod-2", kind="fake", environment=prod.environment)
    with pytest.raises(Ambiguous) as refused:
        deployment_promote(deployment=source, environment=prod.environment, actor=requester)
    assert refused.value.path == "target"
    assert {choice["name"] for choice in refused.value.choices} == {"fake-prod", "fake-prod-2"}
    chosen = deployment_promote(deployment=source, environment=prod.environment, actor=requester, target=prod)
    assert chosen.deployment.target == prod


# --- the line's page and API -------------------------------------------------------------------


def test_the_line_shows_where_revisions_run_only_in_environments_the_viewer_may_see(
    client, django_user_model, requester, approver, token_for, v1, v2, dev, prod
):
    running("add-sub", v1, dev, requester)
    promoted = deployment_promote(
        deployment=Deployment.objects.get(target=dev), environment=prod.environment, actor=requester
    ).deployment
    deployment_approve(deploy_request=promoted.requests.get(status="pending"), actor=approver)
    run_pending(promoted)
    dev_only = make_user(django_user_model, "dev-only")
    from deployments.models import EnvironmentMembership

    EnvironmentMembership.objects.create(user=dev_only, environment=dev.environment, role="viewer")
    line = v1.line
    everyone = client.get(reverse("api:line", args=[line.pk]), HTTP_AUTHORIZATION=token_for(requester)).json()
    assert [r["revision"] for r in everyone["revisions"]] == [2, 1]
    assert {run["environment"] for run in everyone["revisions"][1]["runs_in"]} == {"dev", "prod"}
    limited = client.get(reverse("api:line", args=[line.pk]), HTTP_AUTHORIZATION=token_for(dev_only)).json()
    assert {run["environment"] for run in limited["revisions"][1]["runs_in"]} == {"dev"}
    client.force_login(dev_only)
    page = client.get(reverse("line", args=[line.pk])).content.decode()
    assert "fake-dev" in page
    assert "fake-prod" not in page


def test_the_line_diff_names_models_versions_config_and_tensors(client, requester, token_for, v1, v2):
    answer = client.get(
        reverse("api:line-diff", args=[v1.line_id]) + "?from=1&to=2", HTTP_AUTHORIZATION=token_for(requester)
    )
    assert answer.status_code == 200, answer.content
    diff = answer.json()
    assert diff["added"] == ["add_sub v2"]
    assert diff["changed"] == ["add_sub v1"]
    (model,) = diff["models"]
    assert model["tensors"] == ["input INPUT0: FP32 [4] → FP32 [8]"]
    assert '-  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },' in model["config_diff"].splitlines()
    assert '+  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 8 ] },' in model["config_diff"].splitlines()
    missing = client.get(
        reverse("api:line-diff", args=[v1.line_id]) + "?from=1&to=9", HTTP_AUTHORIZATION=token_for(requester)
    )
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["path"] == "to"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_under_a_new_name_make_one_line_with_distinct_revisions(requester):
    import threading

    from django.db import connection

    contents = [archives.add_sub_files(), v2_files(), v2_files()]
    contents[2]["add_sub/1/model.py"] += b"\n# third\n"
    barrier, outcomes = threading.Barrier(len(contents)), []

    def upload_one(files):
        barrier.wait()
        try:
            outcomes.append(upload(requester, files, name="raced").repository.revision)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload_one, args=(files,)) for files in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [1, 2, 3]
    line = ModelLine.objects.get(name="raced")
    assert line.last_revision == 3
    assert sorted(line.revisions.values_list("revision", flat=True)) == [1, 2, 3]


def test_the_update_page_shows_the_diff_then_asks_for_approval_in_prod(client, requester, approver, v1, v2, prod):
    deployment = deployment_create(name="add-sub", repository=v1, target=prod, actor=requester)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    client.force_login(requester)
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert f'<option value="{v2.pk}">r2 (newer)</option>' in page
    url = reverse("deployment-revision", args=[deployment.pk])
    preview = client.get(url, {"repository": v2.pk}).content.decode()
    assert "added add_sub v2" in preview
    assert "Ask to update to revision 2" in preview
    assert "r1 keeps serving until someone else approves" in preview
    answer = client.post(url, {"repository": v2.pk}, follow=True)
    assert "Update to revision 2 requested: waiting for approval in prod; r1 keeps running." in answer.content.decode()
    deployment.refresh_from_db()
    assert deployment.repository_revision == 1
    assert deployment.requests.get(status="pending").spec["repository_revision"] == 2


def test_the_promote_page_lists_the_deployments_to_choose_from(client, requester, admin, v1, v2, dev, prod):
    source = running("add-sub", v2, dev, requester)
    other = target_create(actor=admin, name="fake-prod-2", kind="fake", environment=prod.environment)
    for target in (prod, other):
        deployment_create(name="add-sub", repository=v1, target=target, actor=requester)
    client.force_login(requester)
    url = reverse("deployment-promote", args=[source.pk])
    page = client.get(url, {"environment": prod.environment_id}).content.decode()
    assert "Update which deployment?" in page
    assert page.count('name="deployment"') == 2
    refused = client.post(url, {"environment": prod.environment_id})
    assert refused.status_code == 400
    assert "2 deployments of “add-sub” run in prod" in refused.content.decode()
    chosen = Deployment.objects.get(target=other)
    done = client.post(url, {"environment": prod.environment_id, "deployment": chosen.pk})
    assert done.status_code == 302
    assert done.url == reverse("deployment", args=[chosen.pk])
    assert chosen.requests.get(status="pending").spec["repository_revision"] == 2
