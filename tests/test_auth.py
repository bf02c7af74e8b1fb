import pytest
from django.urls import reverse

from deployments.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["overview", "repositories", "deployments", "targets", "approvals", "audit", "profile"]


@pytest.mark.parametrize("name", PAGES)
def test_it_sends_anonymous_visitors_to_the_login_page(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_it_signs_in_and_audits_the_login(client, viewer):
    response = client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("overview")
    event = AuditEvent.objects.get(action="user.login")
    assert event.actor == viewer
    assert event.actor_name == "viewer"
    assert event.source_ip == "127.0.0.1"
    assert event.request_id


def test_it_answers_a_wrong_password_generically_and_audits_it(client, viewer):
    response = client.post(reverse("login"), {"username": "viewer", "password": "wrong"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Please enter a correct username and password" in page
    # The same words whether the user exists or not: nothing to enumerate.
    other = client.post(reverse("login"), {"username": "nobody", "password": "wrong"}).content.decode()
    assert "Please enter a correct username and password" in other
    failures = AuditEvent.objects.filter(action="user.login_failed").order_by("seq")
    assert [e.details["username"] for e in failures] == ["viewer", "nobody"]
    assert all("wrong" not in str(e.details) for e in failures)
    assert "_auth_user_id" not in client.session


def test_it_logs_out_on_post_only_and_audits_it(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user.logout", actor=viewer).count() == 1
    assert client.get(reverse("overview")).status_code == 302


def test_it_refuses_a_logout_without_csrf_token(viewer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.post(reverse("logout")).status_code == 403
    assert client.get(reverse("overview")).status_code == 200


def test_it_shows_the_navigation_and_marks_the_current_page(client, viewer):
    client.force_login(viewer)
    page = client.get(reverse("audit")).content.decode()
    for label in ["Overview", "Repositories", "Deployments", "Targets", "Approvals", "Audit"]:
        assert f">{label}</a>" in page
    assert f'href="{reverse("audit")}" aria-current="page"' in page
    assert 'hx-headers=\'{"X-CSRFToken": "' in page


def test_it_keeps_the_audit_log_from_users_without_a_role(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("audit")).status_code == 403
    overview = client.get(reverse("overview")).content.decode()
    assert "Recent activity" not in overview
