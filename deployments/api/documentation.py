"""Who may read the API's own description: anyone signed in to the pages,
and any valid API token (generators and CI fetch the document with the
token they already hold). Outsiders learn nothing of the surface."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login

from deployments.api.auth import TokenAuth
from deployments.api.errors import ApiError, api_error

_token = TokenAuth()


def documentation_access(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = api_error(405, "method_not_allowed", "Use GET here.")
            response["Allow"] = "GET, HEAD"
            return response
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if "HTTP_AUTHORIZATION" in request.META:
            try:
                _token(request)
            except ApiError as refusal:
                return api_error(refusal.status, refusal.code, refusal.message, headers=refusal.headers)
            return view(request, *args, **kwargs)
        if request.path.endswith(".json"):
            return api_error(401, "not_authenticated", "Sign in, or send 'Authorization: Token <key>'.")
        return redirect_to_login(request.get_full_path())

    # This wrapper does the sign-in check itself, answering the document's
    # clients in JSON rather than with a redirect to the login page.
    wrapper.login_required = False
    return wrapper
