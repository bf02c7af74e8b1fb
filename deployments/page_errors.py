"""The error boundary of the pages, as api/errors.py is the API's: a domain error
(or a unique-constraint race, see integrity.py) that a view did not place on
its form becomes a message the person reads, never a 500.

Refusals (NotAllowed) answer 403. Other domain errors: for htmx, the message
as a 4xx fragment (htmx is set to swap 4xx answers); otherwise the message is
flashed and the browser goes back to the page it came from.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import conflict_from


class DomainErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, IntegrityError):
            exception = conflict_from(exception)
        if not isinstance(exception, DomainError):
            return None  # a bug: Django's 500 handling, logged as one
        if isinstance(exception, NotAllowed):
            raise PermissionDenied(exception.message) from exception
        status = 409 if isinstance(exception, WrongState) else 400
        if getattr(request, "htmx", False):
            return HttpResponse(
                format_html('<p class="flash flash-error" role="alert">{}</p>', exception.message), status=status
            )
        messages.error(request, exception.message)
        return redirect(_back(request))


def _back(request) -> str:
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return request.path if request.method == "GET" else "/"
