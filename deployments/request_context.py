"""Who is asking and from where, for the audit log, without threading `request`
through every service call."""

import contextvars
import re
import uuid
from dataclasses import dataclass

from deployments.client_address import client_address

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    source_ip: str | None = None


_NO_REQUEST = RequestContext()
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("request_context")


def current() -> RequestContext:
    """The request being served, or an empty context in workers and commands."""
    return _current.get(_NO_REQUEST)


class RequestContextMiddleware:
    """Gives each request an id (a caller's X-Request-ID if well-formed) and
    echoes it back, so a user can quote it and an admin find it in the audit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id
        token = _current.set(RequestContext(request_id, client_address(request)))
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-ID"] = request_id
        return response
