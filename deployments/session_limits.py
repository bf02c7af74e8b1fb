"""Sessions end after a while without activity, and in any case some hours
after sign-in, whatever the activity: a browser left signed in on a shared
machine must not stay able to ship to production."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import resolve_url

from deployments.audit import audit

STARTED, LAST_SEEN = "limits_started", "limits_last_seen"
# Activity is recorded at most this often: not a session write per request.
RECORD_EVERY = 30


def now() -> float:
    # One place to read the clock, so tests can move it.
    return time.time()


def start(sender, request, user, **kwargs):
    """At sign-in, in the session write the sign-in does anyway."""
    if request is not None and hasattr(request, "session"):
        request.session[STARTED] = request.session[LAST_SEEN] = now()


def _is_background(request) -> bool:
    """htmx's own GETs (polls, live fragments) are not the person doing anything."""
    return request.method == "GET" and request.headers.get("HX-Request") == "true"


class SessionLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            expired = self._check(request, user)
            if expired is not None:
                return expired
        return self.get_response(request)

    def _check(self, request, user):
        moment = now()
        session = request.session
        started = session.setdefault(STARTED, moment)
        last_seen = session.setdefault(LAST_SEEN, moment)
        idle, lifetime = (
            settings.SESSION_IDLE_TIMEOUT.total_seconds(),
            settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds(),
        )
        why = ""
        if moment - started > lifetime:
            why = f"signed in more than {lifetime / 3600:g} hours ago"
        elif moment - last_seen > idle:
            why = f"no activity for {idle / 60:g} minutes"
        if not why:
            if not _is_background(request) and moment - last_seen >= RECORD_EVERY:
                session[LAST_SEEN] = moment
            return None
        audit(action="user.session_expired", actor=user, obj=user, details={"why": why})
        logout(request)
        messages.info(request, f"You were signed out: {why}. Sign in again.")
        if request.headers.get("HX-Request") == "true":
            # A fragment request: make htmx load the sign-in page, not swap it in.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        return redirect_to_login(request.get_full_path())
