"""The JSON API's response shapes (API.md): results, and errors as a list."""

from django.http import JsonResponse


def api_errors(status: int, *errors: tuple[str, str, str]) -> JsonResponse:
    """errors: (code, message, path) triples; path names the offending field, or ""."""
    body = {"errors": [{"code": code, "message": message, "path": path} for code, message, path in errors]}
    return JsonResponse(body, status=status)


def api_error(status: int, code: str, message: str, path: str = "") -> JsonResponse:
    return api_errors(status, (code, message, path))
