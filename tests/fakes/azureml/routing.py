"""Point the real Azure ML SDK v1 at an in-process fake, and keep everything on 127.0.0.1.

Most SDK v1 calls go wherever the workspace's discovery URL says, so a fake
that hands out its own address there needs no help. Two kinds of calls do not:

- ARM (``https://management.azure.com/...``): the subscription list and the
  workspace GET, whose answer carries that discovery URL.
- Blob storage: the SDK rebuilds ``https://{account}.blob.core.windows.net``
  from the SAS URL the artifact service returns, whatever host that URL named.

Both go through ``requests`` (msrest, azure-core's RequestsTransport and the
vendored azure-storage all sit on it), so ``responses`` can catch them and
forward them to the fake over a real HTTP connection; everything else to
127.0.0.1 passes through untouched. ``no_external_network`` is the belt to
that: it makes any connection or DNS lookup for a non-loopback host fail
loudly, whichever library tries it.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import responses
import urllib3

if TYPE_CHECKING:
    from tests.fakes.azureml.v1 import FakeAzureMLv1

ARM_HOST = "management.azure.com"
BLOB_SUFFIX = ".blob.core.windows.net"

_ARM_URL = re.compile(r"https://management\.azure\.com(:443)?/.*")
_BLOB_URL = re.compile(r"https://[a-z0-9]+\.blob\.core\.windows\.net(:443)?/.*")
# Loopback, including the *.localhost names (they resolve to 127.0.0.1 here,
# RFC 6761) on which the fake v2 serves its endpoints' scoring addresses.
_LOOPBACK_URL = re.compile(r"https?://(127\.0\.0\.1|([a-z0-9-]+\.)*localhost)(:\d+)?(/|$)")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Hop-by-hop or recomputed headers: requests/urllib3 must not see stale values.
_DROP_REQUEST_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
_DROP_RESPONSE_HEADERS = {"connection", "transfer-encoding", "content-encoding", "server", "date"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def use_azureml_home(home: str | os.PathLike[str]) -> Path:
    """Set HOME for the Azure ML SDK; call it BEFORE the first ``import azureml``.

    The SDK keeps a discovery cache in ``~/.azureml/.discovery`` and fixes that
    path when ``azureml._base_sdk_common.service_discovery`` is imported (it is
    a default argument). Sharing the developer's real cache would mix fake and
    real endpoints, so tests give the SDK a HOME of their own. The cache key
    includes the discovery URL, so fakes on different ports never collide.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    already = sys.modules.get("azureml._base_sdk_common.service_discovery")
    if already is not None:
        fixed = Path(already.CachedServiceDiscovery.__init__.__defaults__[0])
        if home.resolve() not in fixed.resolve().parents:
            raise RuntimeError(
                f"azureml is already imported with its discovery cache at {fixed}; set HOME before importing it"
            )
    os.environ["HOME"] = str(home)
    # Model.deploy's FutureWarning about SDK v1's end of support.
    os.environ.setdefault("AZUREML_LOG_DEPRECATION_WARNING_ENABLED", "False")
    return home


@contextmanager
def route_azure_to(fake: FakeAzureMLv1) -> Iterator[responses.RequestsMock]:
    """Send ARM and blob-storage requests made through ``requests`` to ``fake``.

    ARM paths are forwarded under ``/arm`` and blob requests path-style under
    ``/blob/{account}``. Requests to 127.0.0.1/localhost pass through; any
    other host fails with responses' ConnectionError ("Connection refused by
    Responses"), so a missed route shows up as an error, never as traffic.
    Yields the ``responses.RequestsMock`` so a test may add its own routes.
    """
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))

    def forward(request: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        url = urlsplit(request.url)
        if url.hostname == ARM_HOST:
            path = "/arm" + url.path
        else:
            account = url.hostname.removesuffix(BLOB_SUFFIX)
            path = f"/blob/{account}{url.path}"
        target = fake.base_url + path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST_HEADERS}
        headers["X-Forwarded-Host"] = url.hostname
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            body = b"".join(body)  # a generator of chunks, as streamed uploads send
        try:
            answer = pool.request(request.method, target, body=body, headers=headers, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            # The fake dropped the connection (reset_next_request): surface it as
            # requests would have, not as urllib3's own exception type.
            raise requests.exceptions.ConnectionError(exc, request=request) from exc
        # Content-Length stays: HEAD answers carry the blob size in it. urllib3 has
        # already decoded any Content-Encoding, which would make it wrong: drop both then.
        drop = _DROP_RESPONSE_HEADERS | ({"content-length"} if "Content-Encoding" in answer.headers else set())
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in drop]
        return answer.status, kept, answer.data

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(_LOOPBACK_URL)
        for method in _METHODS:
            mock.add_callback(method, _ARM_URL, callback=forward)
            mock.add_callback(method, _BLOB_URL, callback=forward)
        try:
            yield mock
        finally:
            pool.clear()


@contextmanager
def no_external_network() -> Iterator[list[str]]:
    """Refuse DNS lookups and connections for any host but loopback, in every library.

    Yields the list of refused hosts (also raised as OSError at the call site),
    so a demo or test can assert it stayed empty even where a library swallowed
    the error and retried or fell back.
    """
    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def is_local(host: Any) -> bool:
        host = host.decode() if isinstance(host, bytes) else str(host)
        return host in _LOOPBACK_HOSTS or host.startswith("127.") or host.lower().endswith(".localhost")

    def refuse(host: Any) -> OSError:
        refused.append(str(host))
        return OSError(f"no_external_network: refused {host!r}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_local(host):
            raise refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise refuse(address[0])
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise refuse(address[0])
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    try:
        yield refused
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex
