"""The JSON API's shapes: JSON bodies in, results and errors (as a list) out."""

import json

from django.http import JsonResponse

from deployments.errors import DomainError


def api_errors(status: int, *errors: tuple[str, str, str]) -> JsonResponse:
    """errors: (code, message, path) triples; path names the offending field, or ""."""
    body = {"errors": [{"code": code, "message": message, "path": path} for code, message, path in errors]}
    return JsonResponse(body, status=status)


def api_error(status: int, code: str, message: str, path: str = "") -> JsonResponse:
    return api_errors(status, (code, message, path))


def json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DomainError(f"The body is not valid JSON ({exc}).", code="invalid_json") from None
    if not isinstance(body, dict):
        raise DomainError("The body must be a JSON object.", code="invalid_json")
    return body
