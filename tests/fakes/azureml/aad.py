"""A fake Microsoft Entra ID token service for the SDKs' real credential code
(azureml-core's ServicePrincipalAuthentication, azure-identity's
ClientSecretCredential): both go through MSAL over `requests`, so the routes
are added to the same `responses` mock that routes ARM and blob traffic.

It answers OIDC/instance discovery and the client-credentials token request
with a JWT-shaped (unsigned) token, valid for an hour unless the test says
otherwise through ``lifetime`` (the fakes' ``expire_tokens``): then both the
JWT's ``exp`` and the answer's ``expires_in`` say so, and the control planes
refuse the token once it has expired (401 ExpiredAuthenticationToken). Requests that did not carry the expected client
secret are refused, so a test sees a wrong secret fail as Azure would.
"""

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs

import responses

from tests.fakes.azureml.v1 import make_arm_token

AUTHORITY = "https://login.microsoftonline.com"
_HOST = re.compile(r"https://login\.microsoftonline\.com(:443)?/.*")


def add_aad_routes(
    mock: responses.RequestsMock,
    *,
    tenant_id: str,
    client_id: str,
    client_secret: str,
    lifetime: Callable[[], int] | None = None,
) -> list:
    """Add the routes; returns the list of token requests seen (form fields).

    ``lifetime()`` is read at each token request: the seconds the new token lives.
    """
    seen: list[dict] = []

    def discovery(request):
        url = request.url
        if "/discovery/instance" in url:
            body = {
                "tenant_discovery_endpoint": f"{AUTHORITY}/{tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": ["login.microsoftonline.com", "login.windows.net"],
                    }
                ],
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(body)
        tenant = url.split("login.microsoftonline.com/", 1)[1].split("/", 1)[0]
        body = {
            "token_endpoint": f"{AUTHORITY}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{AUTHORITY}/{tenant}/oauth2/v2.0/authorize",
            "issuer": f"{AUTHORITY}/{tenant}/v2.0",
            "device_authorization_endpoint": f"{AUTHORITY}/{tenant}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{AUTHORITY}/{tenant}/oauth2/v2.0/logout",
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def token(request):
        form = {
            key: values[0]
            for key, values in parse_qs(
                request.body if isinstance(request.body, str) else request.body.decode()
            ).items()
        }
        seen.append(form)
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            error = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
            return 401, {"Content-Type": "application/json"}, json.dumps(error)
        seconds = int(lifetime()) if lifetime is not None else 3600
        body = {
            "token_type": "Bearer",
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": make_arm_token(tenant_id=tenant_id, lifetime_s=seconds),
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    mock.add_callback(responses.POST, re.compile(rf"{AUTHORITY}/[^/]+/oauth2/v2\.0/token.*"), callback=token)
    mock.add_callback(responses.POST, re.compile(rf"{AUTHORITY}/[^/]+/oauth2/token.*"), callback=token)
    mock.add_callback(responses.GET, _HOST, callback=discovery)
    return seen
