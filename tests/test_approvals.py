"""Environments, four-eyes approvals and per-environment roles."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.models import (
    Approval,
    AuditEvent,
    Deployment,
    DeployRequest,
    EnvironmentMembership,
    Operation,
)
from deployments.services.approvals import (
    deployment_approve,
    deployment_reject,
    deployment_request_cancel,
    requests_expire,
)
from deployments.services.deployments import deployment_create, deployment_delete, deployment_redeploy
from deployments.services.repositories import repository_load_example
from tests import processes
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import local_target

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_approver(django_user_model):
    return make_user(django_user_model, "approver2", "approver")


@pytest.fixture
def repository(requester):
    return repository_load_example(path=EXAMPLES / "add_sub", actor=requester).repository


@pytest.fixture
def prod():
    return local_target("local-prod", "prod", approvals=1)


def _pending(deployment) -> DeployRequest:
    return deployment.requests.get(status="pending")


def test_it_holds_a_prod_deploy_until_someone_else_approves(requester, approver, repository, prod):
    deployment = deployment_create(name="held", repository=repository, target=prod, actor=requester)
    assert deployment.status == Deployment.Status.PENDING_APPROVAL
    assert not deployment.operations.exists()
    request = _pending(deployment)
    assert request.spec_digest == deployment.spec_digest
    assert request.requested_by == requester

    with pytest.raises(NotAllowed, match="someone else must approve"):
        deployment_approve(deploy_request=request, actor=requester)
    deployment_approve(deploy_request=request, actor=approver, comment="looks right")
    request.refresh_from_db()
    deployment.refresh_from_db()
    assert request.status == DeployRequest.Status.APPROVED
    assert deployment.status == Deployment.Status.QUEUED
    operation = deployment.operations.get()
    assert request.operation == operation
    assert operation.created_by == requester
    with pytest.raises(WrongState, match="approved"):
        deployment_approve(deploy_request=request, actor=approver)
    actions = list(
        AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk))
        .order_by("seq")
        .values_list("action", "actor_name")
    )
    assert actions == [
        ("deployment.requested", "requester"),
        ("deployment.approval_requested", "requester"),
        ("deployment.approved", "approver"),
    ]


@pytest.mark.postgres
def test_the_database_refuses_self_approval(requester, approver, repository, prod):
    deployment = deployment_create(name="held", repository=repository, target=prod, actor=requester)
    request = _pending(deployment)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            request=request,
            approver=requester,
            approver_name="requester",
            requester=requester,
            decision="approve",
            spec_digest=request.spec_digest,
        )
    # Lying about who the requester was does not get past the pair key (PostgreSQL).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            request=request,
            approver=requester,
            approver_name="requester",
            requester=approver,
            decision="approve",
            spec_digest=request.spec_digest,
        )
    assert not Approval.objects.exists()


def test_a_changed_spec_voids_the_approvals_given(requester, approver, second_approver, repository):
    two = local_target("local-prod", "prod", approvals=2)
    deployment = deployment_create(name="held", repository=repository, target=two, actor=requester)
    first = _pending(deployment)
    deployment_approve(deploy_request=first, actor=approver)
    first.refresh_from_db()
    assert first.status == DeployRequest.Status.PENDING  # 1 of 2

    with pytest.raises(WrongState, match="already waiting for approval"):
        deployment_redeploy(deployment=deployment, actor=requester)  # the same spec keeps its approval
    deployment_redeploy(deployment=deployment, actor=requester, changes={"worker_count": 2})
    first.refresh_from_db()
    assert first.status == DeployRequest.Status.SUPERSEDED
    second = _pending(deployment)
    assert second.spec_digest != first.spec_digest
    assert second.spec["worker_count"] == 2
    deployment_approve(deploy_request=second, actor=second_approver)
    second.refresh_from_db()
    assert second.status == DeployRequest.Status.PENDING  # the first approval did not carry over
    with pytest.raises(WrongState, match="superseded"):
        deployment_approve(deploy_request=first, actor=second_approver)
    deployment_approve(deploy_request=second, actor=approver)
    deployment.refresh_from_db()
    assert deployment.worker_count == 2
    assert deployment.operations.get().spec_digest == second.spec_digest


def test_a_running_deployment_keeps_its_spec_until_the_change_is_approved(requester, approver, repository, prod):
    deployment = deployment_create(name="live", repository=repository, target=prod, actor=requester)
    deployment_approve(deploy_request=_pending(deployment), actor=approver)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    deployment.refresh_from_db()
    running = deployment.spec_digest

    deployment_redeploy(deployment=deployment, actor=requester, changes={"worker_count": 3})
    deployment.refresh_from_db()
    assert (deployment.status, deployment.spec_digest, deployment.worker_count) == ("healthy", running, 1)
    request = _pending(deployment)
    assert request.current["worker_count"] == 1
    assert request.spec["worker_count"] == 3

    # The same, already approved spec again needs no approval.
    deployment_request_cancel(deploy_request=request, actor=requester)
    deployment_redeploy(deployment=deployment, actor=requester)
    assert deployment.operations.filter(status="queued").count() == 1


def test_reject_needs_a_comment_and_frees_the_name(requester, approver, repository, prod):
    deployment = deployment_create(name="nope", repository=repository, target=prod, actor=requester)
    request = _pending(deployment)
    with pytest.raises(DomainError, match="Say why"):
        deployment_reject(deploy_request=request, actor=approver, comment="  ")
    with pytest.raises(NotAllowed):
        deployment_reject(deploy_request=request, actor=requester, comment="changed my mind")
    deployment_reject(deploy_request=request, actor=approver, comment="wrong repository")
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.REJECTED
    assert "wrong repository" in deployment.status_reason
    assert not deployment.operations.exists()
    again = deployment_create(name="nope", repository=repository, target=prod, actor=requester)
    assert again.status == Deployment.Status.PENDING_APPROVAL


def test_only_the_requester_cancels_and_requests_expire(requester, approver, repository, prod):
    deployment = deployment_create(name="late", repository=repository, target=prod, actor=requester)
    request = _pending(deployment)
    with pytest.raises(NotAllowed, match="Only the requester"):
        deployment_request_cancel(deploy_request=request, actor=approver)
    DeployRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    request.refresh_from_db()
    with pytest.raises(WrongState, match="expired"):
        deployment_approve(deploy_request=request, actor=approver)
    assert requests_expire() == 1
    request.refresh_from_db()
    deployment.refresh_from_db()
    assert request.status == DeployRequest.Status.EXPIRED
    assert deployment.status == Deployment.Status.REJECTED
    assert AuditEvent.objects.filter(action="deployment.request_expired").count() == 1


def test_deletes_and_roles_per_environment(client, django_user_model, requester, approver, repository, prod):
    live = deployment_create(name="live", repository=repository, target=prod, actor=requester)
    deployment_approve(deploy_request=_pending(live), actor=approver)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    deployment_delete(deployment=live, actor=requester)
    live.refresh_from_db()
    assert live.desired_state == "present"  # held
    delete = _pending(live)
    assert delete.kind == "delete"
    deployment_approve(deploy_request=delete, actor=approver)
    live.refresh_from_db()
    assert (live.status, live.operations.filter(status="queued").get().kind) == ("deleting", "delete")

    # No global role: deployer in dev, viewer in prod, nothing in staging.
    member = make_user(django_user_model, "member")
    dev, staging = local_target("local-dev", "dev"), local_target("local-staging", "staging")
    EnvironmentMembership.objects.create(user=member, environment=dev.environment, role="deployer")
    EnvironmentMembership.objects.create(user=member, environment=prod.environment, role="viewer")
    mine = deployment_create(name="mine", repository=repository, target=dev, actor=member)
    assert mine.status == Deployment.Status.QUEUED
    member = django_user_model.objects.get(pk=member.pk)  # a fresh request's user
    with pytest.raises(NotAllowed, match="in prod"):
        deployment_create(name="theirs", repository=repository, target=prod, actor=member)
    hidden = deployment_create(name="off-limits", repository=repository, target=staging, actor=requester)
    visible = set(Deployment.objects.visible_to(member).values_list("name", flat=True))
    assert visible == {"mine", "live"}
    assert hidden.name not in visible

    # The pages agree: targets listed, targets offered for a deploy, and the
    # deployments a repository page names.
    client.force_login(member)
    targets_page = client.get(reverse("targets")).content.decode()
    assert "local-dev" in targets_page
    assert "local-prod" in targets_page  # a viewer there
    assert "local-staging" not in targets_page
    assert client.get(reverse("target", args=[staging.pk])).status_code == 404
    form = client.get(reverse("deployment-create")).content.decode()
    assert "local-dev" in form
    assert "local-prod" not in form  # may not deploy there
    repository_page = client.get(reverse("repository", args=[repository.pk])).content.decode()
    assert "mine" in repository_page
    assert "off-limits" not in repository_page


def test_an_approver_group_narrows_who_may_approve(django_user_model, requester, approver, repository, prod):
    from django.contrib.auth.models import Group

    leads = Group.objects.create(name="ml-leads")
    prod.environment.approver_group = leads
    prod.environment.save()
    deployment = deployment_create(name="grouped", repository=repository, target=prod, actor=requester)
    with pytest.raises(NotAllowed, match="ml-leads"):
        deployment_approve(deploy_request=_pending(deployment), actor=approver)
    approver.groups.add(leads)
    approver = django_user_model.objects.get(pk=approver.pk)
    deployment_approve(deploy_request=_pending(deployment), actor=approver)


def test_the_api_approves_rejects_and_says_why_not(client, token_for, requester, approver, viewer, repository, prod):
    create = client.post(
        reverse("api:deployments"),
        {"name": "api-held", "repository": repository.pk, "target": "local-prod"},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert create.status_code == 201
    assert create.json()["status"] == "pending_approval"
    assert create.json()["approval"]["status"] == "pending"
    deployment_id = create.json()["id"]
    approve_url = reverse("api:deployment-approve", args=[deployment_id])

    def post(url, user, body=None):
        return client.post(url, body or {}, content_type="application/json", HTTP_AUTHORIZATION=token_for(user))

    self_approval = post(approve_url, requester)
    assert self_approval.status_code == 403
    assert "someone else" in self_approval.json()["errors"][0]["message"]
    assert post(approve_url, viewer).status_code == 403
    waiting = client.get(reverse("api:approvals"), HTTP_AUTHORIZATION=token_for(approver)).json()["results"]
    assert [(r["deployment"]["name"], r["status"]) for r in waiting] == [("api-held", "pending")]
    approved = post(approve_url, approver, {"comment": "ok"})
    assert approved.status_code == 200
    body = approved.json()
    assert body["status"] == "queued"
    assert body["approval"]["request"]["decisions"] == [
        {
            "by": "approver",
            "decision": "approve",
            "comment": "ok",
            "at": body["approval"]["request"]["decisions"][0]["at"],
        }
    ]
    again = post(approve_url, approver)
    assert again.status_code == 409
    no_comment = post(reverse("api:deployment-reject", args=[deployment_id]), approver)
    assert no_comment.status_code == 409  # nothing pending any more


@pytest.fixture
def mail_to_files(monkeypatch, tmp_path):
    """The worker the next fixture starts writes each mail to a file here."""
    folder = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    return folder


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_approval_emails_go_to_the_right_people(mail_to_files, celery_worker, requester, approver, repository, prod):
    def mails():
        # Django's file backend creates the file, then writes the message and a
        # line of 79 dashes: a file read before that is not a mail yet.
        texts = [path.read_text() for path in sorted(mail_to_files.glob("*.log"))] if mail_to_files.exists() else []
        return [text for text in texts if text.rstrip().endswith("-" * 79)]

    deployment = deployment_create(name="mailed", repository=repository, target=prod, actor=requester)
    processes.wait_for(lambda: len(mails()) == 1, within=30, what="the request's mail", process=celery_worker)
    (asked,) = mails()
    assert "To: approver@example.com" in asked
    assert "Subject: [prod] requester asks to deploy mailed" in asked
    assert f"/approvals/{_pending(deployment).pk}/" in asked
    assert "requester@example.com" not in asked  # not to the requester, who cannot approve

    deployment_reject(deploy_request=_pending(deployment), actor=approver, comment="wrong repository")
    processes.wait_for(lambda: len(mails()) == 2, within=30, what="the decision's mail", process=celery_worker)
    decided = next(text for text in mails() if text != asked)
    assert "To: requester@example.com" in decided
    assert "Subject: [prod] approver rejected the deploy of mailed" in decided


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_last_approvals_release_one_operation(requester, approver, second_approver, repository):
    two = local_target("local-prod", "prod", approvals=2)
    deployment = deployment_create(name="race", repository=repository, target=two, actor=requester)
    request = _pending(deployment)
    third = make_user(type(requester), "approver3", "approver")
    deployment_approve(deploy_request=request, actor=third)  # 1 of 2: the next one releases
    barrier, outcomes = threading.Barrier(2), []

    def approve(user):
        barrier.wait()
        try:
            deployment_approve(deploy_request=request, actor=user)
            outcomes.append("ok")
        except WrongState as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in (approver, second_approver)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["This request is approved; nothing is waiting for a decision.", "ok"]
    assert Operation.objects.filter(deployment=deployment).count() == 1


def test_the_navigation_counts_the_requests_waiting_for_me(client, requester, approver, repository, prod):
    from django.urls import reverse

    deployment_create(name="noticed", repository=repository, target=prod, actor=requester)
    client.force_login(approver)
    page = client.get(reverse("overview")).content.decode()
    assert '<span class="badge" title="1 waiting for your decision">1</span>' in page
    client.force_login(requester)  # their own request waits for someone else, not for them
    assert 'class="badge"' not in client.get(reverse("overview")).content.decode()


def test_the_demo_users_have_an_address_for_approval_mail(capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("bootstrap_demo", "--no-examples")
    users = get_user_model().objects.filter(username__in=["admin", "approver"])
    assert sorted(users.values_list("email", flat=True)) == ["admin@example.com", "approver@example.com"]
