"""The API's URL patterns, from the ninja API, made fit for the pages' middleware:
its operations authenticate by token themselves, and a wrong method gets
the API's JSON error rather than Django's bare 405."""

from functools import wraps

from django.http import JsonResponse
from django.urls import URLPattern, re_path, reverse

from deployments.api.api import api
from deployments.api.documentation import documentation_access
from deployments.api.errors import api_error


def _api_view(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type", "").startswith("text/"):
            allowed = response["Allow"]
            response = api_error(405, "method_not_allowed", f"Use {allowed.replace(', ', ' or ')} here.")
            response["Allow"] = allowed
        return response

    wrapper.login_required = False
    return wrapper


@documentation_access
def _index(request, **kwargs):
    """/api/v1/ itself (ninja names it to find the API's prefix): where the description is."""
    return JsonResponse(
        {"openapi": reverse("api:openapi-json"), "docs": reverse("api:openapi-view")},
        json_dumps_params={"indent": 2},
    )


def _patterns(patterns):
    for pattern in patterns:
        callback = pattern.callback
        if pattern.name == "api-root":
            callback = _index
        elif getattr(callback, "login_required", True):  # the document's views check access themselves
            callback = _api_view(callback)
        yield URLPattern(pattern.pattern, callback, pattern.default_args, pattern.name)


def _no_such_path(request, rest=""):
    # Under /api/v1/ even a path no operation matches (a name where an id
    # goes, say) answers in the API's shape, not with the pages' HTML 404.
    return api_error(404, "not_found", f"No API operation at {request.path}; see /api/v1/openapi.json.")


# Token-authenticated like every API path: no cookie, so no CSRF check to fail first.
_no_such_path.login_required = False
_no_such_path.csrf_exempt = True

app_name = "api"
urlpatterns = [*_patterns(api.urls[0]), re_path(r"^(?P<rest>[\s\S]*)$", _no_such_path)]
