"""The API's one error shape, `{"errors": [{"code", "message", "path"}]}`,
for every way a request can fail: domain errors from the services, input
the schemas refuse, authentication, size limits and unique-constraint races.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import Http404, JsonResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import conflict_from


class ApiError(DomainError):
    """A refusal with its own HTTP status, raised inside the API only."""

    status = 400

    def __init__(self, message: str, *, code: str | None = None, path: str = "", headers: dict | None = None):
        super().__init__(message, code=code, path=path)
        self.headers = headers or {}


class NotFound(ApiError):
    status, code = 404, "not_found"


class Unauthenticated(ApiError):
    status, code = 401, "not_authenticated"

    def __init__(self):
        super().__init__("Send a valid API token: 'Authorization: Token <key>'.", headers={"WWW-Authenticate": "Token"})


class ReadOnlyToken(ApiError):
    status, code = 403, "read_only_token"


class TooManyFailures(ApiError):
    status, code = 429, "too_many_failures"

    def __init__(self, retry_after: int):
        super().__init__(
            f"Too many requests with bad tokens from this address; a valid token is still served. Bad ones are"
            f" refused for {retry_after} s more.",
            headers={"Retry-After": str(retry_after)},
        )


class TooLarge(ApiError):
    status, code = 413, "too_large"


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media"


def api_error(
    status: int, code: str, message: str, path: str = "", headers: dict | None = None, choices: list | None = None
) -> JsonResponse:
    error = {"code": code, "message": message, "path": path}
    if choices:
        error["choices"] = choices
    response = JsonResponse({"errors": [error]}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _domain_error(request, exc: DomainError) -> JsonResponse:
    if isinstance(exc, ApiError):
        return api_error(exc.status, exc.code, exc.message, exc.path, exc.headers)
    status = 403 if isinstance(exc, NotAllowed) else 409 if isinstance(exc, WrongState) else 400
    return api_error(status, exc.code, exc.message, exc.path, choices=exc.choices)


def _integrity_error(request, exc: IntegrityError) -> JsonResponse:
    conflict = conflict_from(exc)
    if conflict is None:
        raise exc  # not a race on a unique name: a bug, Django's 500
    return api_error(409, conflict.code, conflict.message, conflict.path)


def _validation_error(request, exc: ValidationError) -> JsonResponse:
    """pydantic's findings, one per field, each with the field's dotted path
    and a sentence that names it (pydantic says "Input should be ...")."""
    by_path: dict[str, dict] = {}
    for error in exc.errors:
        # loc is (source, [parameter name,] field, ...[, union member]): the client knows only the field.
        loc = [str(part) for part in error["loc"][1:] if part not in _PARAMETER_NAMES]
        path = ".".join(part for part in loc if part not in _UNION_MEMBERS and "[" not in part)
        kind = error["type"]
        if kind == "extra_forbidden":
            found = {"code": "unknown_field", "message": f"Unknown field '{path}': this operation does not take it."}
        elif kind == "missing":
            found = {"code": "required", "message": f"'{path}' is required." if path else "A JSON body is required."}
        else:
            found = {"code": "invalid", "message": error["msg"].removeprefix("Input ")}
        if path in by_path:
            # A union (an id or a name; an int or a float) fails once per member: one sentence.
            if found["message"] not in by_path[path]["message"]:
                by_path[path]["message"] += f", or {found['message'].removeprefix('should be ')}"
            continue
        by_path[path] = {**found, "path": path}
    errors = []
    for path, error in by_path.items():
        if error["code"] == "invalid":
            error["message"] = f"{path or 'The body'} {error['message']}."
        errors.append(error)
    return JsonResponse({"errors": errors}, status=400)


def _authentication_error(request, exc: AuthenticationError) -> JsonResponse:
    refusal = Unauthenticated()
    return api_error(refusal.status, refusal.code, refusal.message, headers=refusal.headers)


def _http_error(request, exc: HttpError) -> JsonResponse:
    # ninja wraps whatever its body parsing raised; the parser's own refusal
    # (too large, not UTF-8, too deep) is the one to tell.
    if isinstance(exc.__cause__, DomainError):
        return _domain_error(request, exc.__cause__)
    return api_error(exc.status_code, "invalid" if exc.status_code == 400 else "refused", str(exc))


def _too_big(request, exc: RequestDataTooBig) -> JsonResponse:
    # Django refuses from the Content-Length alone, before reading the body.
    return api_error(413, TooLarge.code, f"The body is over {settings.API_MAX_JSON_BYTES} bytes.")


def _not_found(request, exc: Http404) -> JsonResponse:
    return api_error(404, "not_found", "No such object.")


# The names the operations give their schema parameters (see bodies.py).
_PARAMETER_NAMES = {"body", "filters"}
# How pydantic names the member of a union that failed (it follows the field in loc).
_UNION_MEMBERS = {"int", "str", "float", "bool", "constrained-int", "constrained-float", "constrained-str"}


def install(api) -> None:
    api.add_exception_handler(DomainError, _domain_error)
    api.add_exception_handler(IntegrityError, _integrity_error)
    api.add_exception_handler(ValidationError, _validation_error)
    api.add_exception_handler(AuthenticationError, _authentication_error)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(RequestDataTooBig, _too_big)
