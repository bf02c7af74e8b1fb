"""Single sign-on through a real OpenID Connect exchange with a provider on
127.0.0.1: discovery, PKCE, signed ID tokens, and what gets refused."""

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from deployments.models import AuditEvent, EnvironmentMembership
from deployments.sso import discovery
from tests.engine import local_target
from tests.fakes.oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider, Person

pytestmark = pytest.mark.django_db

ROLE_MAP = "ml-engineers=deployer,ml-prod-approvers=approver@prod"


@pytest.fixture
def provider():
    fake = FakeOidcProvider()
    discovery.forget()
    yield fake
    fake.close()
    discovery.forget()


@pytest.fixture
def sso(settings, provider):
    """The dashboard configured for the fake provider, as the environment variables would."""
    settings.OIDC_ISSUER = provider.issuer_url
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_RP_SCOPES = "openid email profile"
    settings.OIDC_USE_NONCE = True
    settings.OIDC_USE_PKCE = True
    settings.OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
    settings.OIDC_TIMEOUT = 5
    settings.OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
    settings.OIDC_GROUPS_CLAIM = "groups"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.OIDC_REQUIRE_ROLE = True
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "deployments.sso.backend.DashboardOIDCBackend",
    ]
    local_target("local-prod", "prod")
    return provider


ALICE = Person(sub="00000000-aaaa", username="alice@example.com", email="alice@example.com", groups=["ml-engineers"])


def start(client):
    """The browser's part up to the callback: our redirect, then the provider's."""
    first = client.get(reverse("sso-login"), {"next": "/deployments/"})
    assert first.status_code == 302
    answer = httpx.get(first["Location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def sign_in(client):
    return client.get(start(client))


def test_a_new_user_signs_in_with_the_roles_their_groups_grant(client, sso):
    sso.signed_in = Person(**{**ALICE.__dict__, "groups": ["ml-engineers", "ml-prod-approvers", "unrelated"]})
    landed = sign_in(client)
    assert landed.status_code == 302
    assert landed["Location"] == "/deployments/"
    user = get_user_model().objects.get(username="alice@example.com")
    assert not user.has_usable_password()
    assert set(user.groups.values_list("name", flat=True)) == {"deployer"}
    assert EnvironmentMembership.objects.get(user=user).role == "approver"
    assert client.get("/deployments/").status_code == 200

    authorize = sso.authorize_requests[-1]
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["nonce"]
    assert "code_verifier" in sso.token_requests[-1]
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert actions[-3:] == ["user.created", "user.roles_changed", "user.login"]


def test_leaving_a_group_removes_the_role_at_the_next_sign_in(client, sso):
    sso.signed_in = ALICE
    sign_in(client)
    client.logout()
    sso.signed_in = Person(**{**ALICE.__dict__, "groups": []})
    refused = sign_in(client)
    assert refused.status_code == 403
    assert "none of the groups that give a role" in refused.content.decode()
    user = get_user_model().objects.get(username="alice@example.com")
    assert not user.groups.exists()
    changed = AuditEvent.objects.filter(action="user.roles_changed").order_by("seq").last()
    assert (changed.before["roles"], changed.after["roles"]) == (["deployer"], [])
    assert client.get("/deployments/").status_code == 302  # not signed in


@pytest.mark.parametrize(
    ("switch", "value", "reason"),
    [
        ("issuer", "https://login.evil.example/", "not by the configured"),
        ("audience", "someone-else", "not for this dashboard"),
        ("expires_in", -3600, "has expired"),
        ("foreign_key", True, "signature does not verify"),
        ("nonce", "a-nonce-from-another-sign-in", "nonce does not match"),
    ],
)
def test_bad_id_tokens_are_refused_with_a_clear_page(client, sso, switch, value, reason):
    sso.signed_in = ALICE
    setattr(sso, switch, value)
    refused = sign_in(client)
    assert refused.status_code == 403
    page = refused.content.decode()
    assert "Sign-in refused" in page
    assert reason in page
    assert not get_user_model().objects.filter(username="alice@example.com").exists()
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.details["method"] == "sso"
    assert reason in failed.details["reason"]


def test_a_replayed_callback_is_refused(client, sso):
    sso.signed_in = ALICE
    callback = start(client)
    assert client.get(callback).status_code == 302
    client.logout()
    replay = client.get(callback)
    assert replay.status_code == 403
    assert "already used" in replay.content.decode()


def test_an_identity_cannot_take_over_a_local_account(client, sso, django_user_model):
    django_user_model.objects.create_user("alice@example.com", password="a-long-test-password-42")
    sso.signed_in = ALICE
    refused = sign_in(client)
    assert refused.status_code == 403
    assert "A local account is already named alice@example.com" in refused.content.decode()


def test_local_accounts_can_be_turned_off(client, sso, settings, django_user_model):
    django_user_model.objects.create_user("bob", password="a-long-test-password-42")
    settings.PASSWORD_LOGIN = False
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Test IdP" in page
    assert 'name="password"' not in page
    posted = client.post(reverse("login"), {"username": "bob", "password": "a-long-test-password-42"})
    assert posted.status_code == 403


def test_the_role_map_knows_every_role():
    from deployments.roles import ROLE_PERMISSIONS
    from deployments.sso import role_map

    assert set(role_map.PRECEDENCE) == set(ROLE_PERMISSIONS)
    grants = role_map.parse("a=admin, b=deployer@dev; b=approver@dev,c=viewer@prod")
    roles = role_map.roles_for(["b", "c", "z"], grants)
    assert roles.everywhere == set()
    assert roles.per_environment == {"dev": "deployer", "prod": "viewer"}


def test_without_an_issuer_there_is_no_sso(client):
    assert client.get(reverse("sso-login")).status_code == 404
    assert client.get(reverse("sso-callback"), {"code": "x", "state": "y"}).status_code == 404
    assert "Sign in with" not in client.get(reverse("login")).content.decode()


def test_a_forged_error_callback_shows_no_foreign_text_and_locks_nobody_out(client, sso, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(3):
        page = client.get(reverse("sso-callback"), {"error": "access_denied", "error_description": "Call +1 555 0100"})
        assert page.status_code == 403
        text = page.content.decode()
        assert "access_denied" in text
        assert "555 0100" not in text
    weird = client.get(reverse("sso-callback"), {"error": "<b>x</b>"}).content.decode()
    assert "<b>x</b>" not in weird
    # Refused sign-ins are not password guesses: the same address still signs in.
    sso.signed_in = ALICE
    assert sign_in(client).status_code == 302
