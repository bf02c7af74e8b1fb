"""Token authentication for the JSON API (`Authorization: Token <key>`).

The API accepts tokens only, never the session cookie: a cookie is ambient
authority that a cross-site form could ride, a header is not, so the API
needs no CSRF token.
"""

from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import IntegrityError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from deployments import request_context
from deployments.api.responses import api_error
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import conflict_from
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


def _failures_key(request) -> str:
    return f"api-token-failures:{request_context.current().source_ip or 'unknown'}"


def _too_many_failures(request) -> bool:
    return cache.get(_failures_key(request), 0) >= settings.API_TOKEN_FAILURE_LIMIT


def _count_failure(request) -> None:
    key = _failures_key(request)
    # add() then incr(): the window starts at the first failure and does not
    # slide with later ones, so the address is free again after it.
    cache.add(key, 0, settings.API_TOKEN_FAILURE_WINDOW)
    try:
        cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, settings.API_TOKEN_FAILURE_WINDOW)


def _unauthorized():
    response = api_error(401, "not_authenticated", "Send a valid API token: 'Authorization: Token <key>'.")
    response["WWW-Authenticate"] = "Token"
    return response


def api_view(*methods: str, authenticated: bool = True):
    """Wrap a JSON API view: allowed methods, token auth, domain errors as JSON."""

    def decorator(view):
        @csrf_exempt
        @login_not_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = api_error(405, "method_not_allowed", f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return response
            if authenticated:
                if _too_many_failures(request):
                    response = api_error(429, "too_many_failures", "Too many requests with bad tokens; wait a minute.")
                    response["Retry-After"] = str(settings.API_TOKEN_FAILURE_WINDOW)
                    return response
                token = authenticate_token(request)
                if token is None:
                    _count_failure(request)
                    return _unauthorized()
                if token.scope == ApiToken.Scope.READ and request.method not in ("GET", "HEAD"):
                    return api_error(403, "read_only_token", "This token is read-only; use a deploy-scoped token.")
                request.user = token.user
            try:
                return view(request, *args, **kwargs)
            except NotAllowed as exc:
                return api_error(403, exc.code, exc.message)
            except WrongState as exc:
                return api_error(409, exc.code, exc.message, exc.path)
            except DomainError as exc:
                return api_error(400, exc.code, exc.message, exc.path)
            except IntegrityError as exc:
                conflict = conflict_from(exc)
                if conflict is None:
                    raise
                return api_error(409, conflict.code, conflict.message, conflict.path)

        return wrapper

    return decorator
