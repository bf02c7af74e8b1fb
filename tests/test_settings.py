"""Production mode refuses to start on missing or weak settings, and passes
Django's deployment checklist when configured properly."""

import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.processes import ROOT, child_env


def production_env(**overrides):
    base = {
        "DASHBOARD_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        "AUDIT_KEYS": f"2026-2:{secrets.token_urlsafe(32)},2026-1:{secrets.token_urlsafe(32)}",
        "ALLOWED_HOSTS": "dashboard.example.com",
        "DATABASE_URL": "postgres://dashboard@db.example.com:5432/dashboard",
        "REDIS_URL": "redis://redis.example.com:6379/0",
        "VAR_DIR": None,
        "DEBUG": None,
    }
    base.update(overrides)
    return child_env(**base)


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_checklist():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY must be set when DASHBOARD_ENV=production"),
        ({"SECRET_KEY": "django-insecure-" + "x" * 60}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too weak"),
        ({"DATABASE_URL": None}, "DATABASE_URL must be set"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL is malformed"),
        ({"REDIS_URL": None}, "REDIS_URL must be set"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must be set"),
        ({"ENCRYPTION_KEYS": None}, "ENCRYPTION_KEYS must be set"),
        ({"ENCRYPTION_KEYS": "not-a-key"}, "ENCRYPTION_KEYS: key #1 is not a valid Fernet key"),
        ({"AUDIT_KEYS": None}, "AUDIT_KEYS must be set"),
        ({"DEBUG": "true"}, "DEBUG must be off"),
        ({"DEBUG": "maybe"}, "DEBUG is malformed"),
        ({"DASHBOARD_ENV": "prod"}, "DASHBOARD_ENV must be 'local' or 'production'"),
        ({"OIDC_ISSUER": "https://login.example.com/t/v2.0"}, "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET must be set"),
        (
            {"OIDC_ISSUER": "http://login.example.com/", "OIDC_CLIENT_ID": "a", "OIDC_CLIENT_SECRET": "b"},
            "OIDC_ISSUER must be an https:// URL",
        ),
        (
            {
                "OIDC_ISSUER": "https://login.example.com/",
                "OIDC_CLIENT_ID": "a",
                "OIDC_CLIENT_SECRET": "b",
                "OIDC_ROLE_MAP": "ml-admins=root",
            },
            "OIDC_ROLE_MAP entry 'ml-admins=root'",
        ),
        ({"PASSWORD_LOGIN": "false"}, "PASSWORD_LOGIN=false needs single sign-on"),
        ({"LOCAL_ENDPOINT_PORTS": "21000-20000"}, "LOCAL_ENDPOINT_PORTS is malformed"),
        ({"LOCAL_ENDPOINT_PORTS": "80-90"}, "LOCAL_ENDPOINT_PORTS is malformed"),
    ],
)
def test_production_refuses_to_start_naming_the_setting(overrides, message):
    result = manage("check", env=production_env(**overrides))
    assert result.returncode != 0
    assert message in result.stderr


def load_settings(env):
    """Settings alone, in a fresh process (they generate the local secrets):
    a third of the time of `manage.py check`, which imports every app."""
    code = "from django.conf import settings; settings.SECRET_KEY"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_local_mode_generates_its_secrets_once_with_private_permissions(tmp_path):
    env = child_env(
        VAR_DIR=str(tmp_path), DATABASE_URL=None, REDIS_URL=None, SECRET_KEY=None, ENCRYPTION_KEYS=None, AUDIT_KEYS=None
    )
    first = load_settings(env)
    assert first.returncode == 0, first.stderr
    secret, audit_key = (tmp_path / "secret_key").read_text(), (tmp_path / "audit_key").read_text()
    for name in ("secret_key", "encryption_key", "audit_key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    assert audit_key.startswith("local-")
    assert load_settings(env).returncode == 0
    assert (tmp_path / "secret_key").read_text() == secret
    assert (tmp_path / "audit_key").read_text() == audit_key


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "AUDIT_KEYS must hold at least one"),
        (["k1:short"], "AUDIT_KEYS: key #1 must be ID:SECRET"),
        (["no-secret-at-all-" + "x" * 40], "AUDIT_KEYS: key #1 must be ID:SECRET"),
        (["bad id:" + "x" * 40], "AUDIT_KEYS: key #1 must be ID:SECRET"),
        (["k1:" + "x" * 40, "k1:" + "y" * 40], "the id 'k1' is used twice"),
    ],
)
def test_audit_keys_are_checked_naming_the_bad_one(keys, message):
    from django.core.exceptions import ImproperlyConfigured

    from dashboard.local_secrets import check_audit_keys

    with pytest.raises(ImproperlyConfigured, match=message):
        check_audit_keys(keys)
