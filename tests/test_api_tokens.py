import hashlib

import pytest
from django.core.management import call_command
from django.urls import reverse

from deployments.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def test_it_creates_a_token_on_the_profile_page_and_stores_only_its_hash(client, viewer):
    client.force_login(viewer)
    page = client.post(reverse("token-create"), {"name": "release pipeline"}).content.decode()
    token = ApiToken.objects.get(user=viewer)
    key = page.split('aria-label="New API token"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert key.startswith("tdb_")
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(ApiToken.objects.values().get())
    event = AuditEvent.objects.get(action="api_token.created")
    assert key not in str(event.details)
    # Shown once: the profile page never shows it again.
    assert key not in client.get(reverse("profile")).content.decode()
    response = client.get(reverse("api:audit"), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200


def test_it_answers_htmx_with_the_tokens_fragment_only(client, viewer):
    client.force_login(viewer)
    response = client.post(reverse("token-create"), {"name": "ci"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="tokens">')
    assert "<html" not in body


def test_it_refuses_a_token_without_a_name(client, viewer):
    client.force_login(viewer)
    page = client.post(reverse("token-create"), {"name": "  "}).content.decode()
    assert "Give the token a name" in page
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action="api_token.created").exists()


def test_it_stops_a_revoked_token_at_once(client, viewer, token_for):
    header = token_for(viewer)
    assert client.get(reverse("api:audit"), HTTP_AUTHORIZATION=header).status_code == 200
    client.force_login(viewer)
    token = ApiToken.objects.get(user=viewer)
    client.post(reverse("token-revoke", args=[token.pk]))
    assert client.get(reverse("api:audit"), HTTP_AUTHORIZATION=header).status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked", actor=viewer).count() == 1


def test_it_hides_other_users_tokens(client, viewer, outsider, token_for):
    token_for(viewer)
    client.force_login(outsider)
    token = ApiToken.objects.get(user=viewer)
    assert client.post(reverse("token-revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_the_management_command_prints_a_working_key(client, viewer, capsys):
    call_command("create_api_token", "viewer", "--name", "deploy job")
    key = capsys.readouterr().out.strip()
    assert ApiToken.objects.get(user=viewer).name == "deploy job"
    assert client.get(reverse("api:audit"), HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_the_management_command_names_an_unknown_user():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


@pytest.mark.parametrize("header", ["", "Token", "Token nope", "Bearer tdb_x", "Basic dXNlcjpwYXNz"])
def test_the_api_refuses_missing_or_bad_tokens(client, header):
    response = client.get(reverse("api:audit"), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["errors"][0]["code"] == "not_authenticated"


def test_the_api_ignores_the_session_cookie(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("api:audit")).status_code == 401


def test_the_api_refuses_users_without_the_right_role(client, outsider, token_for):
    response = client.get(reverse("api:audit"), HTTP_AUTHORIZATION=token_for(outsider))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "forbidden"
