"""The provider's endpoints, read once from its discovery document.

Only the issuer is configured; the document at
`<issuer>/.well-known/openid-configuration` names the rest. Its `issuer`
must be the configured one exactly, or nothing it names is trusted.
"""

import threading

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_lock = threading.Lock()
_cache: dict[str, dict] = {}

# mozilla-django-oidc's setting names, and the discovery keys that fill them.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def document() -> dict:
    issuer = settings.OIDC_ISSUER
    with _lock:
        if issuer not in _cache:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = httpx.get(url, timeout=settings.OIDC_TIMEOUT, follow_redirects=False)
                answer.raise_for_status()
                found = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ImproperlyConfigured(f"OIDC discovery at {url} failed: {exc}") from exc
            if found.get("issuer") != issuer:
                raise ImproperlyConfigured(
                    f"OIDC discovery at {url} names issuer {found.get('issuer')!r}, not {issuer!r}."
                )
            _cache[issuer] = found
        return _cache[issuer]


def forget() -> None:
    """Drop the cached document (a provider rotated its endpoints; tests)."""
    with _lock:
        _cache.clear()


def setting(name: str, *default):
    """A mozilla-django-oidc setting: an explicit Django setting wins, then
    the discovery document for endpoints."""
    if hasattr(settings, name):
        return getattr(settings, name)
    if name in ENDPOINTS:
        return document()[ENDPOINTS[name]]
    if default:
        return default[0]
    raise ImproperlyConfigured(f"Setting {name} not found")
