"""Token authentication for the JSON API (`Authorization: Token <key>`).

The API accepts tokens only, never the session cookie: a cookie is ambient
authority that a cross-site form could ride, a header is not, so the API
needs no CSRF token.
"""

import math
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from ninja.security.base import AuthBase

from deployments import request_context
from deployments.api.errors import ReadOnlyToken, TooManyFailures, Unauthenticated
from deployments.models import ApiToken
from deployments.models.api_token import hash_token_key

# Recording every use would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate_token(request) -> ApiToken | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "token" or not key.strip():
        return None
    token = ApiToken.objects.active().select_related("user").filter(key_hash=hash_token_key(key.strip())).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def now() -> float:
    return time.time()


def _failures_key(request) -> str:
    """Failures from one address in the current fixed window: the window is in
    the key, so the count ends with it whatever a cache backend's incr() does
    to expiry (the file cache's reset it, and blocked for five minutes)."""
    window = settings.API_TOKEN_FAILURE_WINDOW
    address = request_context.current().source_ip or "unknown"
    return f"api-token-failures:{address}:{int(now() // window)}"


def _too_many_failures(request) -> bool:
    return cache.get(_failures_key(request), 0) >= settings.API_TOKEN_FAILURE_LIMIT


def _count_failure(request) -> None:
    key = _failures_key(request)
    # Kept a window longer than it counts, so a slow clock between web
    # processes cannot end a window early; the key changes with the window.
    cache.add(key, 0, settings.API_TOKEN_FAILURE_WINDOW * 2)
    try:
        cache.incr(key)
    except ValueError:  # evicted between the two calls
        cache.set(key, 1, settings.API_TOKEN_FAILURE_WINDOW * 2)


class TokenAuth(AuthBase):
    """Declared in the OpenAPI document as an `Authorization` header whose
    value is `Token <key>`; a read-scoped token may only read."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "Authorization"
    openapi_description = "`Token <key>`: create a key on your profile page or with `manage.py create_api_token`."

    def __call__(self, request):
        # A valid token is served even from an address over the limit: the
        # limit is per address, and everyone behind one NAT (or every local
        # client) shares it. Keys are 256-bit random, so the limit is about
        # noise and load, not guessing; bad tokens from there get 429.
        token = authenticate_token(request)
        if token is None:
            if _too_many_failures(request):
                window = settings.API_TOKEN_FAILURE_WINDOW
                raise TooManyFailures(retry_after=max(1, math.ceil(window - now() % window)))
            _count_failure(request)
            raise Unauthenticated()
        if token.scope == ApiToken.Scope.READ and request.method not in ("GET", "HEAD"):
            raise ReadOnlyToken("This token is read-only; use a deploy-scoped token.")
        # The services and the audit read the actor from request.user.
        request.user = token.user
        return token
