"""Moving a deployment to another target of its environment, on the
in-memory kinds: what the wizard refuses and why, the approvals on both
ends, and how a migration follows its deploy and its delete. Both sides
answering real requests: tests/test_migration_live.py."""

import pytest

from deployments.errors import DomainError, WrongState
from deployments.models import AuditEvent, Deployment, Environment, Migration, Target
from deployments.services.approvals import deployment_approve, deployment_reject
from deployments.services.deployments import deployment_create
from deployments.services.migrations import (
    migration_abandon,
    migration_create,
    migration_cut_over,
    migrations_settle,
    why_not,
)
from deployments.services.operations import reconcile
from tests.engine import run_pending
from workers.targets.fake import endpoint as fake_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_fakes():
    fake_endpoint.reset()
    yield
    fake_endpoint.reset()


def targets(environment="prod", approvals=1):
    env, _ = Environment.objects.get_or_create(name=environment, defaults={"approvals_required": approvals})
    old = Target.objects.create(name=f"old-{environment}", kind="fake", environment=env)
    new = Target.objects.create(name=f"new-{environment}", kind="fake_endpoint", environment=env)
    return old, new


def running(repository, actor, target, approver=None, **spec) -> Deployment:
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=actor, **spec)
    if approver is not None:
        deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    deployment.refresh_from_db()
    return deployment


def test_an_entry_script_service_is_told_why_it_cannot_move(requester, repository):
    old, new = targets("dev", approvals=0)
    script = "def init():\n    pass\n\ndef run(data):\n    return data\n"
    source = running(repository, requester, old, mode="entry_script", entry_script=script)
    reason = why_not(source, new)
    assert "runs an entry script" in reason
    assert "cannot move" in reason
    with pytest.raises(DomainError) as refused:
        migration_create(source=source, target=new, actor=requester)
    assert (refused.value.code, refused.value.path) == ("cannot_migrate", "target")
    assert not Deployment.objects.filter(target=new).exists(), "nothing is created"


def test_a_target_of_another_environment_is_no_destination(requester, repository):
    old, _ = targets("dev", approvals=0)
    _, elsewhere = targets("staging", approvals=0)
    source = running(repository, requester, old)
    assert "a migration stays in dev" in why_not(source, elsewhere)


def test_a_prod_migration_is_approved_at_both_ends(requester, approver, repository):
    old, new = targets()
    source = running(repository, requester, old, approver=approver)
    migration = migration_create(source=source, target=new, actor=requester)
    destination = migration.destination
    assert destination.status == Deployment.Status.PENDING_APPROVAL
    assert destination.target == new
    assert destination.spec_digest != source.spec_digest
    assert migration.status == Migration.Status.DEPLOYING
    with pytest.raises(WrongState, match="already being moved"):
        migration_create(source=source, target=new, actor=requester, name="again")

    deployment_approve(deploy_request=destination.requests.get(status="pending"), actor=approver)
    run_pending(destination)
    reconcile()
    migration.refresh_from_db()
    assert migration.status == Migration.Status.DEPLOYED

    with pytest.raises(WrongState, match="compare both sides"):
        migration_cut_over(migration=migration, actor=requester)
    # As if the comparison had found a difference: a cut-over then needs force and a reason.
    Migration.objects.filter(pk=migration.pk).update(status="compared", comparison={"passed": False})
    migration.refresh_from_db()
    with pytest.raises(WrongState, match="did not answer alike"):
        migration_cut_over(migration=migration, actor=requester)
    with pytest.raises(DomainError, match="Say why"):
        migration_cut_over(migration=migration, actor=requester, force=True)
    migration_cut_over(migration=migration, actor=requester, force=True, because="the old one is wrong")
    migration.refresh_from_db()
    assert migration.status == Migration.Status.CUTTING_OVER
    delete = source.requests.get(status="pending")
    assert delete.kind == "delete"

    # A rejected delete leaves the original serving, and says so.
    deployment_reject(deploy_request=delete, actor=approver, comment="clients have not moved yet")
    migrations_settle()
    migration.refresh_from_db()
    assert migration.status == Migration.Status.COMPARED
    assert "not approved" in migration.reason

    migration_cut_over(migration=migration, actor=requester, force=True, because="clients moved")
    deployment_approve(deploy_request=source.requests.get(status="pending"), actor=approver)
    run_pending(source)
    migrations_settle()
    migration.refresh_from_db()
    assert migration.status == Migration.Status.DONE
    actions = set(
        AuditEvent.objects.filter(object_id=str(source.pk), action__startswith="deployment.migration").values_list(
            "action", flat=True
        )
    )
    assert {
        "deployment.migration_started",
        "deployment.migration_cut_over_requested",
        "deployment.migration_done",
    } <= actions
    forced = AuditEvent.objects.filter(action="deployment.migration_cut_over_requested").order_by("seq").last()
    assert forced.details["because"] == "clients moved"


def test_abandoning_keeps_the_new_deployment(requester, repository):
    old, new = targets("dev", approvals=0)
    source = running(repository, requester, old)
    migration = migration_create(source=source, target=new, actor=requester, name="add-sub-v2")
    migration_abandon(migration=migration, actor=requester)
    migration.refresh_from_db()
    assert migration.status == Migration.Status.ABANDONED
    assert migration.destination.name == "add-sub-v2"
    assert Deployment.objects.filter(pk=migration.destination_id).exclude(status="deleted").exists()


def test_the_api_says_why_a_service_cannot_move(client, requester, repository, token_for):
    old, new = targets("dev", approvals=0)
    script = "def init():\n    pass\n\ndef run(data):\n    return data\n"
    source = running(repository, requester, old, mode="entry_script", entry_script=script)
    answer = client.post(
        f"/api/v1/deployments/{source.pk}/migrations",
        {"target": new.name},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(requester),
    )
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == "cannot_migrate"
    assert "entry script" in error["message"]
