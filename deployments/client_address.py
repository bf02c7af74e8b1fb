"""The client's address, for the audit log, sign-in lockouts and the API's
bad-token limit. Behind TRUSTED_PROXY_COUNT proxies (e.g. one TLS-terminating
load balancer) each proxy appends the address it received the request from
to X-Forwarded-For, so the client's is that many entries from the right;
anything further left was written by the client and is not believed."""

import ipaddress

from django.conf import settings


def client_address(request) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.TRUSTED_PROXY_COUNT
    if not hops:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote  # not through the expected proxies
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
