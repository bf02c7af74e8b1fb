"""What a security review checks: brute-force lockout, session limits,
headers on every page, secrets at rest and in logs, and API token rules."""

import io
import logging
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from deployments import crypto, session_limits
from deployments.models import ApiToken, AuditEvent, Deployment, Environment, Target
from deployments.services.api_tokens import api_token_create, api_token_revoke
from deployments.services.targets import target_create
from tests.conftest import PASSWORD, make_user
from tests.engine import local_target
from tests.urls import url_patterns

pytestmark = pytest.mark.django_db

SECRET = "client-secret-value-9f8e7d6c5b"
WEBHOOK_SECRET = "webhook-secret-value-1a2b3c"
ENDPOINT_KEY = "endpoint-key-value-4d5e6f"


def _login(client, username, password, address):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_lockout_is_per_user_and_address_and_audited(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    make_user(django_user_model, "alice", "viewer")
    for _ in range(2):
        assert _login(client, "alice", "wrong password", "203.0.113.5").status_code == 200
    assert _login(client, "alice", "wrong password", "203.0.113.5").status_code == 429  # the third locks
    locked = _login(client, "alice", PASSWORD, "203.0.113.5")  # even the right password, from there
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # The same user from elsewhere, and someone else from that address, still get in.
    assert _login(client, "alice", PASSWORD, "198.51.100.7").status_code == 302
    client.logout()
    make_user(django_user_model, "bob", "viewer")
    assert _login(client, "bob", PASSWORD, "203.0.113.5").status_code == 302
    locked_out = AuditEvent.objects.filter(action="user.locked_out")
    assert locked_out.count() == 2  # the attempt that locked, and the one refused while locked
    assert all(event.details == {"username": "alice", "address": "203.0.113.5"} for event in locked_out)


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves: session_limits reads the time only through now()."""
    moment = [1_800_000_000.0]
    monkeypatch.setattr(session_limits, "now", lambda: moment[0])
    return moment


def test_sessions_end_after_idling_and_after_their_lifetime(client, viewer, clock, settings):
    settings.SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
    settings.SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
    client.force_login(viewer)
    assert client.get("/").status_code == 200
    clock[0] += 29 * 60
    assert client.get("/").status_code == 200
    # htmx polls are not activity: 29 more minutes of them, then nothing.
    clock[0] += 20 * 60
    assert client.get("/", HTTP_HX_REQUEST="true").status_code == 200
    clock[0] += 11 * 60
    expired = client.get("/deployments/")
    assert expired.status_code == 302
    assert expired["Location"] == "/login/?next=/deployments/"
    assert AuditEvent.objects.get(action="user.session_expired").details["why"] == "no activity for 30 minutes"

    client.force_login(viewer)
    for _ in range(40):  # busy all day, a request every 20 minutes
        clock[0] += 20 * 60
        response = client.get("/")
        if response.status_code == 302:
            break
    assert response.status_code == 302
    why = AuditEvent.objects.filter(action="user.session_expired").order_by("seq").last().details["why"]
    assert why == "signed in more than 12 hours ago"


def test_production_session_cookies_are_secure_httponly_samesite():
    from tests.test_settings import manage, production_env

    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_AGE)",
        env=production_env(),
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].split() == ["True", "True", "Lax", "True", "31536000", str(12 * 3600)]


def _page_urls():
    """Every page and fragment without an object id."""
    for name, parameters in url_patterns():
        if (
            not parameters
            and not name.startswith(("admin:", "api:", "sso-"))
            and name not in {"logout", "token-create"}
        ):
            yield reverse(name)


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_every_page_sends_the_security_headers(client, admin):
    client.force_login(admin)
    local_target()
    checked = 0
    for url in _page_urls():
        response = client.get(url, secure=True)
        if response.status_code == 405:
            continue
        policy = response["Content-Security-Policy"]
        for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
            assert directive in policy, f"{url}: {policy}"
        assert "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy
        if response["Content-Type"].startswith("text/html") and "<script" in response.content.decode():
            assert "'nonce-" in policy, url
            nonce = policy.split("'nonce-")[1].split("'")[0]
            assert f'nonce="{nonce}"' in response.content.decode()
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Strict-Transport-Security"].startswith("max-age=31536000")
        checked += 1
    assert checked >= 10
    for page in ("/", "/deployments/", "/approvals/", "/environments/"):
        body = client.get(page).content.decode()
        assert " style=" not in body, f"{page} has an inline style the policy would block"


def test_rotation_re_encrypts_every_secret_and_no_secret_leaks(client, admin, settings, caplog):
    caplog.set_level(logging.DEBUG)
    old, new = settings.ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    target = target_create(
        actor=admin,
        name="aks",
        kind="azureml_v1_aks",
        environment=local_target().environment,
        auth_method="service_principal",
        settings={
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "resource_group": "rg",
            "workspace_name": "ws",
            "compute_name": "aks-gpu",
            "tenant_id": "11111111-1111-1111-1111-111111111111",
            "client_id": "22222222-2222-2222-2222-222222222222",
        },
        secrets={"client_secret": SECRET},
    )
    Environment.objects.filter(pk=target.environment_id).update(webhook_secret_encrypted=crypto.encrypt(WEBHOOK_SECRET))
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES

    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    deployment = Deployment.objects.create(
        name="keyed",
        repository=repository,
        repository_name="r",
        repository_digest=repository.digest,
        target=local_target("local-2", "dev"),
        spec_digest="0" * 64,
        key_encrypted=crypto.encrypt(ENDPOINT_KEY),
    )

    def raw(table, column, pk):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
            return cursor.fetchone()[0]

    before = raw("deployments_target", "credentials_encrypted", target.pk)
    settings.ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.ENCRYPTION_KEYS = [new]  # the old key is gone
    after = raw("deployments_target", "credentials_encrypted", target.pk)
    assert after != before
    assert Target.objects.get(pk=target.pk).secrets() == {"client_secret": SECRET}
    assert crypto.decrypt(raw("deployments_environment", "webhook_secret_encrypted", target.environment_id)) == (
        WEBHOOK_SECRET
    )
    assert crypto.decrypt(raw("deployments_deployment", "key_encrypted", deployment.pk)) == ENDPOINT_KEY
    rotated = AuditEvent.objects.get(action="secrets.rotated")
    assert rotated.details["re_encrypted"]["deployments.target.credentials_encrypted"] == 1

    client.force_login(admin)
    pages = [
        client.get(reverse("target", args=[target.pk])),
        client.get(reverse("environment", args=[target.environment_id])),
        client.get(reverse("deployment", args=[deployment.pk])),
        client.get(reverse("audit")),
        client.get(reverse("audit-export-json")),
    ]
    shown = "".join(b"".join(p.streaming_content).decode() if p.streaming else p.content.decode() for p in pages)
    everything = shown + caplog.text + str(list(AuditEvent.objects.values_list("before", "after", "details")))
    for secret in (SECRET, WEBHOOK_SECRET, ENDPOINT_KEY):
        assert secret not in everything
        for table, column in (
            ("deployments_target", "credentials_encrypted"),
            ("deployments_environment", "webhook_secret_encrypted"),
            ("deployments_deployment", "key_encrypted"),
        ):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608 - fixed names
                assert all(secret not in (value or "") for (value,) in cursor.fetchall())


def test_tokens_have_a_scope_a_lifetime_and_a_rate_limit(client, django_user_model, settings):
    deployer = make_user(django_user_model, "deployer", "deployer")
    _, read_key = api_token_create(user=deployer, name="dashboards", scope="read")
    url = reverse("api:deployments")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {read_key}").status_code == 200
    refused = client.post(url, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {read_key}")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "read_only_token"

    token, key = api_token_create(user=deployer, name="ci", expires_in_days=1)
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 401

    token, key = api_token_create(user=deployer, name="revoked")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    api_token_revoke(token=token, actor=deployer)
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {key}").status_code == 401  # at once

    settings.API_TOKEN_FAILURE_LIMIT = 5
    _, good = api_token_create(user=deployer, name="good")
    for _ in range(5):
        assert client.get(url, HTTP_AUTHORIZATION="Token tdb_guess", REMOTE_ADDR="192.0.2.9").status_code == 401
    limited = client.get(url, HTTP_AUTHORIZATION="Token tdb_guess", REMOTE_ADDR="192.0.2.9")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    # A valid token from that address (someone else behind the same NAT) is served.
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="192.0.2.9").status_code == 200
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="192.0.2.10").status_code == 200


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(client, django_user_model, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 2
    make_user(django_user_model, "alice", "viewer")
    # The client wrote the first entry itself; the proxy appended the real one.
    for spoofed in ("192.0.2.1", "192.0.2.2"):
        client.post(
            reverse("login"),
            {"username": "alice", "password": "wrong password"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"{spoofed}, 203.0.113.5",
        )
    failed = AuditEvent.objects.filter(action="user.login_failed")
    assert {event.source_ip for event in failed} == {"203.0.113.5"}
    # Changing the spoofable part does not escape the lockout; another real address is not locked.
    assert _login_via_proxy(client, "alice", "198.51.100.1, 203.0.113.5").status_code == 429
    assert _login_via_proxy(client, "alice", "203.0.113.77").status_code == 302


def _login_via_proxy(client, username, forwarded):
    return client.post(
        reverse("login"),
        {"username": username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR=forwarded,
    )
