"""Targets: admin-only changes, encrypted secrets, validation, connection tests."""

import json

import pytest
from django.db import connection
from django.urls import reverse

from deployments import crypto
from deployments.models import AuditEvent, Environment, Target
from deployments.services.targets import target_create, target_test_run, target_update

pytestmark = pytest.mark.django_db

SECRET = "sp-secret-Zq8!never-shown"
AKS = {
    "subscription_id": "00000000-0000-0000-0000-000000000001",
    "resource_group": "ml-rg",
    "workspace_name": "ml-ws",
    "compute_name": "aks-gpu",
    "tenant_id": "tenant-1",
    "client_id": "client-1",
    "default_resources": {"gpu_cores": 1, "cpu_cores": 1, "memory_gb": 4},
}


@pytest.fixture
def prod():
    return Environment.objects.create(name="prod", approvals_required=1)


def make_aks(admin, prod, **overrides):
    return target_create(
        actor=admin,
        name=overrides.pop("name", "aks-prod"),
        kind="azureml_v1_aks",
        environment=prod,
        auth_method="service_principal",
        settings={**AKS, **overrides},
        secrets={"client_secret": SECRET},
    )


def raw_column(target) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials_encrypted FROM deployments_target WHERE id = %s", [target.pk])
        return cursor.fetchone()[0]


def test_the_secret_is_encrypted_at_rest_and_never_in_the_audit(admin, prod):
    target = make_aks(admin, prod)
    assert SECRET not in raw_column(target)
    assert Target.objects.get(pk=target.pk).secrets() == {"client_secret": SECRET}
    events = AuditEvent.objects.filter(object_type="deployments.target")
    assert events.count() == 1
    assert SECRET not in str(list(events.values()))
    assert events.get().after["has_secrets"] is True


def test_rotation_reencrypts_under_the_newest_key(admin, prod, settings):
    from cryptography.fernet import Fernet

    target = make_aks(admin, prod)
    old = raw_column(target)
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS]
    assert Target.objects.get(pk=target.pk).secrets() == {"client_secret": SECRET}  # old key still opens it
    rotated = crypto.rotate(old)
    settings.ENCRYPTION_KEYS = settings.ENCRYPTION_KEYS[:1]  # the old key removed
    assert json.loads(crypto.decrypt(rotated)) == {"client_secret": SECRET}
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(old)


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"subscription_id": "not-a-guid"}, "settings.subscription_id"),
        ({"compute_name": ""}, "settings.compute_name"),
        ({"workspace_name": "bad name!"}, "settings.workspace_name"),
        ({"default_resources": {"gpu_cores": 99}}, "settings.default_resources.gpu_cores"),
        ({"colour": "blue"}, "settings.colour"),
    ],
)
def test_bad_settings_are_named(admin, prod, overrides, path):
    from deployments.errors import DomainError

    with pytest.raises(DomainError) as caught:
        make_aks(admin, prod, **overrides)
    assert caught.value.path == path
    assert not Target.objects.exists()


def test_a_service_principal_needs_its_secret(admin, prod):
    from deployments.errors import DomainError

    with pytest.raises(DomainError, match="client_secret"):
        target_create(
            actor=admin,
            name="x",
            kind="azureml_v1_aks",
            environment=prod,
            auth_method="service_principal",
            settings=AKS,
        )


def test_changing_settings_keeps_the_stored_secret_unless_replaced(admin, prod):
    target = make_aks(admin, prod)
    target_update(actor=admin, target=target, settings={**AKS, "compute_name": "aks-gpu-2"})
    target.refresh_from_db()
    assert target.settings["compute_name"] == "aks-gpu-2"
    assert target.secrets() == {"client_secret": SECRET}
    event = AuditEvent.objects.filter(action="target.changed").get()
    assert event.details == {"secret_changed": False}
    assert event.before["settings"]["compute_name"] == "aks-gpu"


def test_only_admins_manage_targets(client, admin, viewer, token_for, prod):
    body = {
        "name": "aks",
        "kind": "azureml_v1_aks",
        "environment": "prod",
        "auth_method": "service_principal",
        "settings": AKS,
        "secrets": {"client_secret": SECRET},
    }
    url = reverse("api:targets")
    assert (
        client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(viewer)).status_code == 403
    )
    created = client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(admin))
    assert created.status_code == 201
    assert SECRET not in created.content.decode()
    assert created.json()["has_secrets"] is True
    listed = client.get(url, HTTP_AUTHORIZATION=token_for(viewer))
    assert [t["name"] for t in listed.json()["results"]] == ["aks"]
    assert SECRET not in listed.content.decode()
    envs = client.get(reverse("api:environments"), HTTP_AUTHORIZATION=token_for(viewer)).json()
    assert envs["results"] == [
        {
            "id": prod.pk,
            "name": "prod",
            "approvals_required": 1,
            "approver_group": None,
            "approval_lifetime_hours": 72,
            "approve_deletes": True,
            "approve_traffic": True,
            "require_rollouts": False,
            "load_tests": "allowed",
            "webhook": False,
        }
    ]


def test_the_pages_never_render_the_secret(client, admin, prod):
    target = make_aks(admin, prod)
    client.force_login(admin)
    page = client.get(reverse("target", args=[target.pk])).content.decode()
    assert "secret stored (encrypted)" in page
    assert SECRET not in page
    assert 'name="client_secret"' in page
    listing = client.get(reverse("targets")).content.decode()
    assert "aks-prod" in listing
    assert SECRET not in listing


def test_the_create_page_makes_a_local_target(client, admin, prod):
    client.force_login(admin)
    response = client.post(
        reverse("target-create"), {"name": "my-box", "kind": "local", "environment": prod.pk, "auth_method": "none"}
    )
    target = Target.objects.get(name="my-box")
    assert response["Location"] == reverse("target", args=[target.pk])


def test_viewers_cannot_create_or_change_targets(client, viewer, admin, prod):
    target = make_aks(admin, prod)
    client.force_login(viewer)
    assert client.get(reverse("target-create")).status_code == 403
    assert client.post(reverse("target", args=[target.pk]), {"auth_method": "azure_cli"}).status_code == 403


@pytest.mark.triton
def test_testing_a_local_target_starts_triton_once(admin, prod):
    target = target_create(actor=admin, name="box", kind="local", environment=prod)
    result = target_test_run(target_id=target.pk, requested_by="boss")
    assert result["state"] == "ok", result
    assert result["message"].startswith("Triton 2.51.0 answered")
    assert result["message"].endswith("; sandbox available")
    target.refresh_from_db()
    assert target.last_test["state"] == "ok"
    assert AuditEvent.objects.filter(action="target.tested").count() == 1


def test_the_connection_fragment_polls_until_the_test_ends(client, admin, prod):
    target = target_create(actor=admin, name="box", kind="local", environment=prod)
    client.force_login(admin)
    started = client.post(reverse("target-test", args=[target.pk]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in started.content.decode()
    Target.objects.filter(pk=target.pk).update(last_test={"state": "ok", "message": "fine"})
    done = client.get(reverse("target", args=[target.pk]), HTTP_HX_REQUEST="true")
    assert done.status_code == 286
    assert "fine" in done.content.decode()


def test_a_test_no_worker_answers_stops_waiting_and_can_be_retried(client, admin, prod):
    from datetime import timedelta

    from django.utils import timezone

    target = target_create(actor=admin, name="box", kind="local", environment=prod)
    long_ago = (timezone.now() - Target.TEST_GIVEN_UP_AFTER - timedelta(seconds=1)).isoformat()
    Target.objects.filter(pk=target.pk).update(last_test={"state": "running", "at": long_ago, "by": "boss"})
    client.force_login(admin)
    fragment = client.get(reverse("target", args=[target.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286  # no more polling
    body = fragment.content.decode()
    assert "no answer from a worker" in body
    assert "is the Celery worker running?" in body
    assert "disabled" not in body  # the button works again


def test_a_local_target_page_offers_no_auth_method(client, admin):
    from tests.engine import local_target

    target = local_target()
    client.force_login(admin)
    page = client.get(reverse("target", args=[target.pk])).content.decode()
    assert "Auth method" not in page
    assert "None (local)" not in page
    assert 'type="hidden" name="auth_method" value="none"' in page
