"""The sign-in redirect and callback, with a page that says why a sign-in
was refused (and an audit event) instead of a silent bounce."""

import re

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from deployments.audit import audit
from deployments.sso import discovery

_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")
STALE = "This sign-in link was already used or was started in another browser; start again."


def _only_when_configured(view):
    """The library's views read their settings when built: without SSO they 404."""

    def guarded(request, *args, **kwargs):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        return view(request, *args, **kwargs)

    return guarded


class SignInView(OIDCAuthenticationRequestView):
    get_settings = staticmethod(discovery.setting)

    def get(self, request):
        try:
            return super().get(request)
        except ImproperlyConfigured as exc:
            return refused(request, f"Single sign-on is misconfigured: {exc}")


class CallbackView(OIDCAuthenticationCallbackView):
    get_settings = staticmethod(discovery.setting)

    def get(self, request):
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            return refused(request, getattr(request, "sso_refusal", "") or _plain(str(exc)))
        except requests.RequestException as exc:
            return refused(request, f"The identity provider refused the sign-in code: {exc}")
        except ImproperlyConfigured as exc:
            return refused(request, f"Single sign-on is misconfigured: {exc}")

    def login_failure(self):
        request = self.request
        return refused(request, getattr(request, "sso_refusal", "") or _provider_error(request.GET.get("error", "")))


def _provider_error(code: str) -> str:
    """The provider's error code (OAuth 2.0 codes are short words), never its
    free text: anyone can put that in a callback URL."""
    if not code:
        return STALE
    if not _ERROR_CODE.match(code):
        return "The identity provider refused the sign-in."
    return f"The identity provider refused the sign-in ({code}). Start again, or ask an administrator."


def exempt_from_lockout(request, credentials) -> bool:
    """For django-axes: a refused single sign-on is not a password guess and
    must not lock an address (an office behind one NAT) out of signing in."""
    return getattr(request, "path", "") == reverse("sso-callback")


def _plain(message: str) -> str:
    # The library raises this one itself when the state is unknown.
    return STALE if "state not found" in message else message


def refused(request, reason: str):
    audit(action="user.login_failed", actor_name="anonymous", details={"method": "sso", "reason": reason[:300]})
    return render(request, "deployments/sso_refused.html", {"reason": reason}, status=403)


sign_in = _only_when_configured(SignInView.as_view())
callback = _only_when_configured(CallbackView.as_view())
