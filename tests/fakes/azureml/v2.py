"""An in-repo fake of the Azure ML control plane as the SDK v2 (azure-ai-ml) drives it.

The real ``azure-ai-ml`` code runs unchanged; only the network is faked. The
fake answers on ``https://127.0.0.1:PORT`` (TLS with a throwaway self-signed
certificate, because the SDK refuses bearer tokens over plain http) for:

* ARM calls under ``/subscriptions/{s}/resourceGroups/{rg}/providers/
  Microsoft.MachineLearningServices/workspaces/{ws}``: the workspace, model
  containers and versions, datastores (+ ``listSecrets``), online endpoints
  (+ ``listKeys``, ``token``, ``regenerateKeys``) and their deployments
  (+ ``getLogs``);
* the long-running-operation status URLs it hands out (``mfeOperationsStatus``
  / ``mfeOperationResults``, shaped like Azure's), answering "InProgress"
  ``in_progress_polls`` times with ``retry-after-ms: 1`` before the final
  status, so the SDK's pollers finish in milliseconds (``long_operations``
  makes them last, with ARM's ``Retry-After`` in whole seconds);
* Blob storage, path-style: ``/{account}/{container}/{blob}`` (the SDK is
  pointed there by patching ``STORAGE_ACCOUNT_URLS["AzureBlob"]``; see
  :func:`use_fake_v2`);
* every endpoint's scoring address, on the same TLS server, told apart by the
  Host header: ``https://<endpoint>.<location>.<inference_host_suffix>:PORT/score``
  (Azure: ``https://<endpoint>.<region>.inference.ml.azure.com/score``). It
  exists from the endpoint's creation on, checks the endpoint's key, routes by
  the traffic split or the ``azureml-model-deployment`` header, and forwards
  ``/score`` and Triton's ``/v2/...`` to the chosen deployment's backend.
* Azure Monitor's metrics of each endpoint
  (``{endpoint id}/providers/Microsoft.Insights/metrics``), computed from the
  requests its scoring address served (``monitor.py``), visible
  ``metrics_delay_s`` after each request.

Deploying calls the test's ``on_deploy(endpoint, deployment, model_files_dir)``
in a background thread; it returns the deployment's backend URL (a local
Triton, or a placeholder), to which the endpoint's scoring address forwards.
An exception from it turns into a "Failed" deployment, reported through the
operation status exactly where the SDK's poller raises it.

Faults (``slow_upload``, ``long_operations``, ``throttle``,
``fail_next_request``, ``reset_next_request``, ``expire_tokens``,
``fail_provisioning``, ``turn_unhealthy``) are switched on per test; see
``faults.py`` and README.md for what each does and which Azure document it
follows.

State lives in memory and covers one workspace (the one named at construction);
requests naming another workspace get ARM's 404.

Typical use::

    fake = FakeAzureMLv2(on_deploy=lambda ep, dep, files: triton_url)
    fake.start()
    try:
        with use_fake_v2(fake):
            ml_client = fake.ml_client()  # or MLClient(FakeCredential(), ..., retry_total=0)
            ...
    finally:
        fake.stop()
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import functools
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree

import httpx
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from . import monitor
from .faults import (
    V2_UPLOAD_TIMEOUT_S,
    FaultSwitches,
    FaultyRequestHandler,
    ProvisioningFailure,
    expired_token_headers,
    throttle_headers,
    throttle_message,
)
from .tls import make_self_signed_cert

__all__ = [
    "DeployError",
    "EndpointKeys",
    "FakeAzureMLv2",
    "FakeCredential",
    "RecordedRequest",
    "use_fake_v2",
]

ARM_PROVIDER = "Microsoft.MachineLearningServices"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "rg-fake"
DEFAULT_WORKSPACE = "ws-fake"
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"
# Azure's answer when nothing can take a request (Azure ML docs: batch endpoint
# troubleshooting quotes it; managed endpoints answer it with 404).
NO_VALID_DEPLOYMENTS = (
    "No valid deployments to route to. Please check that the endpoint has at least one deployment "
    "with positive weight values or use a deployment specific header to route."
)

OnDeploy = Callable[[str, str, Path], str]
OnDelete = Callable[[str, str], None]
OnLogs = Callable[[str, str, int, str | None], str]


class DeployError(Exception):
    """Raise from ``on_deploy`` / ``on_delete`` to choose the error code Azure reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EndpointKeys:
    primary: str
    secondary: str


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON for ARM calls, byte count for blob uploads, else None
    at: float = 0.0  # time.monotonic() when the fake received it


@dataclass
class _Operation:
    """One long-running operation: its status URL answers until ``finished`` is set."""

    id: str
    kind: str
    finished: threading.Event = field(default_factory=threading.Event)
    error: dict[str, str] | None = None
    polls: int = 0
    hold_s: float = 0.0  # long_operations: stays InProgress at least this long
    retry_after: int | None = None  # whole seconds for Retry-After; None: the fast millisecond hint


@dataclass
class _Blob:
    data: bytes
    metadata: dict[str, str]
    content_type: str
    etag: str
    last_modified: datetime.datetime


@dataclass
class _Deployment:
    body: dict[str, Any]  # the REST resource as the fake answers it
    scoring_url: str | None = None
    error: dict[str, str] | None = None
    deploy_attempted: bool = False  # on_deploy was called, so on_delete will be
    succeeded_at: float = 0.0
    logs: list[str] = field(default_factory=list)
    unhealthy: str | None = None  # turn_unhealthy: why no replica answers


@dataclass(frozen=True)
class ScoringRequest:
    """One request to an endpoint's scoring address, as the fake's front end saw it."""

    endpoint: str
    deployment: str | None  # the deployment that answered (or would have), None when none was chosen
    method: str
    path: str
    status: int
    at: datetime.datetime | None = None  # UTC, when the front end received it
    # From receiving the request to having the answer's status and headers (the body streams after).
    duration_ms: float = 0.0
    # The model container's status: the backend's, or the one the front end names in
    # ms-azureml-model-error-statuscode; None when no container was asked.
    model_status: int | None = None


class _Answer(Exception):
    """Raised to answer at once with a ready response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(moment: datetime.datetime | None = None) -> str:
    return (moment or _now()).isoformat().replace("+00:00", "Z")


RAW_HEADERS_KEY = "fake_azureml.raw_headers"
RECEIVED_KEY = "fake_azureml.received"


class _QuietHandler(FaultyRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence werkzeug's one-line-per-request access log; ``fake.requests`` has it all."""

    def make_environ(self) -> dict[str, Any]:
        # WSGI folds "-" and "_" in header names together (HTTP_X_MS_META_UPLOAD_STATUS),
        # but blob metadata keys keep underscores: the SDK looks for "upload_status"
        # and re-uploads everything when it reads back "upload-status".
        environ = super().make_environ()
        environ[RAW_HEADERS_KEY] = list(self.headers.items())
        return environ


class FakeAzureMLv2(FaultSwitches):
    """The fake control plane. Construct, ``start()``, point the SDK at it, ``stop()``.

    :param on_deploy: ``(endpoint_name, deployment_name, model_files_dir) -> scoring_url``.
        Called in a background thread for every deployment PUT (create or update).
        ``model_files_dir`` holds the files uploaded for the deployment's model
        version, by their paths relative to the uploaded folder. Raise
        :class:`DeployError` to pick the error code; any other exception is
        reported as ``DeploymentFailed`` with its text as the message.
    :param on_delete: ``(endpoint_name, deployment_name) -> None``, called when a
        deployment whose ``on_deploy`` was called is deleted (alone or with its endpoint).
    :param on_logs: ``(endpoint, deployment, tail, container_type) -> str`` to answer
        ``get_logs`` (e.g. from a real container); by default the fake's own event
        lines. It runs under the fake's lock: keep it quick.
    :param inference_host_suffix: endpoints' scoring addresses are
        ``https://<endpoint>.<location>.<suffix>:<port>/score`` (Azure's are
        ``https://<endpoint>.<region>.inference.ml.azure.com/score``); the suffix
        must resolve to 127.0.0.1, as ``*.localhost`` names do here.
    """

    _upload_timeout_s = V2_UPLOAD_TIMEOUT_S

    def __init__(
        self,
        on_deploy: OnDeploy | None = None,
        on_delete: OnDelete | None = None,
        *,
        on_logs: OnLogs | None = None,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        workspace_name: str = DEFAULT_WORKSPACE,
        location: str = "westeurope",
        storage_account: str = "fakestorage",
        blob_container: str = "azureml-blobstore-fake",
        in_progress_polls: int = 1,
        inference_host_suffix: str = "inference.ml.localhost",
    ) -> None:
        self.on_deploy = on_deploy
        self.on_delete = on_delete
        self.on_logs = on_logs
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace_name
        self.location = location
        self.storage_account = storage_account
        self.blob_container = blob_container
        # How many "InProgress" answers each operation gives before its final
        # status (it also stays InProgress for as long as on_deploy runs).
        self.in_progress_polls = in_progress_polls
        self.inference_host_suffix = inference_host_suffix
        self.tenant_id = DEFAULT_TENANT
        self._init_faults()
        self.scoring_requests: list[ScoringRequest] = []
        # Seconds before a scoring request shows in Azure Monitor's metrics (README,
        # "Azure Monitor metrics"); 0 here, minutes on Azure.
        self.metrics_delay_s = 0.0
        self._endpoint_tokens: dict[str, dict[str, float]] = {}  # aml tokens issued: token -> expiry
        self._http: httpx.Client | None = None

        self.create_calls = 0  # deployment PUTs that created a new deployment
        self.update_calls = 0  # deployment PUTs on an existing deployment
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []  # "METHOD /path" the fake had no route for (answered 404)
        self.errors: list[str] = []  # tracebacks of the fake's own crashes (answered 500)

        self._lock = threading.RLock()
        self._workers: list[threading.Thread] = []
        self._operations: dict[str, _Operation] = {}
        self._failures: dict[str, list[tuple[str, str]]] = {}
        self._models: dict[tuple[str, str], dict[str, Any]] = {}
        self._blobs: dict[str, _Blob] = {}
        self._staged_blocks: dict[tuple[str, str], bytes] = {}
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._deployments: dict[tuple[str, str], _Deployment] = {}
        self._keys: dict[str, EndpointKeys] = {}
        self._sas_signature = secrets.token_urlsafe(24)
        self._server = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None
        self.base_url = ""
        self.ca_bundle_path = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAzureMLv2:
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-azureml-v2-"))
        cert = make_self_signed_cert(
            self._tmp / "tls", dns_names=(f"*.{self.location}.{self.inference_host_suffix}".lower(),)
        )
        # The bundle is the fake's certificate alone, not appended to the system
        # CAs: werkzeug closes every connection, so each request pays a TLS
        # handshake plus a load of this file, and the 145-certificate system
        # bundle made each call ~2.5x slower (38 ms against 16 ms). Nothing
        # outside 127.0.0.1 is reachable here anyway.
        self.ca_bundle_path = str(cert.cert_path)
        self._server = make_server(
            "127.0.0.1",
            0,
            self._wsgi,
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=(str(cert.cert_path), str(cert.key_path)),
        )
        self._server.fake = self  # the request handler reads reset rules from it
        self.base_url = f"https://127.0.0.1:{self._server.server_port}"
        # The scoring front end's connections to the deployments' backends (plain http on 127.0.0.1).
        self._http = httpx.Client(timeout=httpx.Timeout(60, connect=5), trust_env=False, follow_redirects=False)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-azureml-v2", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.wait_idle(timeout=10)
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FakeAzureMLv2:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every background operation (on_deploy, on_delete) has finished."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ test-facing API

    @property
    def workspace_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{ARM_PROVIDER}/workspaces/{self.workspace_name}"
        )

    def ml_client(self, **kwargs: Any):
        """An ``MLClient`` for the fake's workspace (call inside :func:`use_fake_v2`)."""
        from azure.ai.ml import MLClient

        kwargs.setdefault("retry_total", 0)  # no 5 s of ARM retries on a refused connection
        return MLClient(FakeCredential(), self.subscription_id, self.resource_group, self.workspace_name, **kwargs)

    def fail_next_deploy(self, code: str = "QuotaExceeded", message: str = "Not enough quota.") -> None:
        """The next deployment create/update fails with this error, without calling on_deploy."""
        self.fail_next_operation("deployment", code, message)

    def fail_next_operation(self, kind: str, code: str, message: str) -> None:
        """Make the next long-running operation of ``kind`` end "Failed" with this error.

        ``kind`` is one of "deployment", "endpoint" (create/update),
        "delete_deployment", "delete_endpoint". Failures queue up in order.
        """
        if kind not in {"deployment", "endpoint", "delete_deployment", "delete_endpoint"}:
            raise ValueError(f"unknown operation kind {kind!r}")
        with self._lock:
            self._failures.setdefault(kind, []).append((code, message))

    def keys(self, endpoint_name: str) -> EndpointKeys:
        with self._lock:
            return self._keys[endpoint_name]

    def endpoint(self, endpoint_name: str) -> dict[str, Any]:
        """A copy of the endpoint's REST resource as the fake would answer it."""
        with self._lock:
            return copy.deepcopy(self._endpoints[endpoint_name])

    def deployment(self, endpoint_name: str, deployment_name: str) -> dict[str, Any]:
        """A copy of the deployment's REST resource as the fake would answer it."""
        with self._lock:
            return copy.deepcopy(self._deployments[(endpoint_name, deployment_name)].body)

    def deployment_names(self, endpoint_name: str) -> list[str]:
        """The endpoint's deployments (any provisioning state but deleted), sorted."""
        with self._lock:
            return sorted(name for endpoint, name in self._deployments if endpoint == endpoint_name)

    def deployment_error(self, endpoint_name: str, deployment_name: str) -> dict[str, str] | None:
        """``{"code", "message"}`` of the deployment's last failed operation, else None."""
        with self._lock:
            return self._deployments[(endpoint_name, deployment_name)].error

    def deployment_scoring_url(self, endpoint_name: str, deployment_name: str) -> str | None:
        with self._lock:
            return self._deployments[(endpoint_name, deployment_name)].scoring_url

    def model_versions(self) -> list[str]:
        """Registered model versions as "name:version"."""
        return sorted(f"{name}:{version}" for name, version in self._models)

    def add_log(self, endpoint_name: str, deployment_name: str, line: str) -> None:
        with self._lock:
            self._deployments[(endpoint_name, deployment_name)].logs.append(line)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def scoring_host(self, endpoint_name: str) -> str:
        return f"{endpoint_name}.{self.location}.{self.inference_host_suffix}".lower()

    def scoring_uri(self, endpoint_name: str) -> str:
        """The endpoint's one stable scoring address, shaped like Azure's managed one."""
        return f"https://{self.scoring_host(endpoint_name)}:{self.port}/score"

    def turn_unhealthy(
        self,
        endpoint_name: str,
        deployment_name: str,
        reason: str = "Liveness probe failed: Get http://127.0.0.1:8000/v2/health/live: connection refused",
    ) -> None:
        """The deployment's containers die after success: provisioningState stays Succeeded
        (as on Azure), requests routed to it get the front end's "no healthy replica"
        answer, and its logs say why."""
        with self._lock:
            deployment = self._deployments[(endpoint_name, deployment_name)]
            deployment.unhealthy = reason
            deployment.logs.append(f"{_iso()} {reason}")
            deployment.logs.append(f"{_iso()} Back-off restarting failed container inference-server")

    def turn_healthy(self, endpoint_name: str, deployment_name: str) -> None:
        with self._lock:
            deployment = self._deployments[(endpoint_name, deployment_name)]
            deployment.unhealthy = None
            deployment.logs.append(f"{_iso()} fake-azureml: container inference-server is ready again")

    # ------------------------------------------------------------------ WSGI plumbing

    def _wsgi(self, environ: dict[str, Any], start_response: Callable) -> Any:
        environ[RECEIVED_KEY] = (_now(), time.perf_counter())
        request = Request(environ)
        try:
            endpoint_label = self._scoring_endpoint_label(request)
            if endpoint_label is not None:
                response = self._score(request, endpoint_label)
            else:
                response = self._request_fault(request) or self._dispatch(request)
        except _ArmError as err:
            response = self._arm_error(err.status, err.code, err.message)
        except _Answer as answer:
            response = answer.response
        except Exception:  # a bug in the fake: answer like ARM would, keep the traceback for the test
            with self._lock:
                self.errors.append(traceback.format_exc())
            response = self._arm_error(500, "InternalServerError", "The fake Azure ML crashed; see fake.errors.")
        return response(environ, start_response)

    # ------------------------------------------------------------------ the endpoints' scoring front end

    # Headers a Triton client needs on the way in and out; the rest stays between client and front end.
    _FORWARD_REQUEST_HEADERS = ("content-type", "inference-header-content-length", "accept", "accept-encoding")
    _FORWARD_RESPONSE_HEADERS = ("content-type", "inference-header-content-length", "content-encoding")

    def _scoring_endpoint_label(self, request: Request) -> str | None:
        """The endpoint's host label when the request came to a scoring host, else None (ARM, blob)."""
        host = (request.host or "").rsplit(":", 1)[0].lower()
        suffix = f".{self.location}.{self.inference_host_suffix}".lower()
        return host[: -len(suffix)] if host.endswith(suffix) and len(host) > len(suffix) else None

    def _score(self, request: Request, label: str) -> Response:
        """One request to an endpoint's scoring address: key check, routing, forwarding."""
        wanted = request.headers.get("azureml-model-deployment", "").strip()
        with self._lock:
            name = next((n for n in self._endpoints if n.lower() == label), None)
            if name is None:
                return self._scored(label, None, request, self._plain(404, f"Endpoint {label} not found."))
            refused = self._refuse_scoring_auth(name, request.headers.get("Authorization", ""))
            if refused is not None:
                return self._scored(name, None, request, refused)
            traffic = self._endpoints[name]["properties"].get("traffic") or {}
            mine = {dep: d for (ep, dep), d in self._deployments.items() if ep == name}
            if wanted:
                # The header reaches any deployment of the endpoint, whatever its weight (0% included).
                chosen = next((dep for dep in mine if dep.lower() == wanted.lower()), None)
                if chosen is None:
                    return self._scored(name, None, request, self._plain(404, NO_VALID_DEPLOYMENTS))
            else:
                weighted = [(dep, pct) for dep, pct in traffic.items() if pct > 0 and dep in mine]
                if not weighted:
                    return self._scored(name, None, request, self._plain(404, NO_VALID_DEPLOYMENTS))
                chosen = random.choices([d for d, _ in weighted], weights=[p for _, p in weighted])[0]  # noqa: S311
            deployment = mine[chosen]
            backend, unhealthy = deployment.scoring_url, deployment.unhealthy
        if backend is None or unhealthy is not None:
            return self._scored(name, chosen, request, self._no_healthy_replica(chosen))
        return self._forward(name, chosen, backend, request)

    def _refuse_scoring_auth(self, endpoint: str, authorization: str) -> Response | None:
        mode = (self._endpoints[endpoint]["properties"].get("authMode") or "Key").lower()
        token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
        if not token:
            return self._plain(401, "key_auth_bad_header_forbidden" if mode == "key" else "aml_token_bad_header")
        if mode == "key":
            keys = self._keys[endpoint]  # read at each request: regenerated keys count at once
            return None if token in (keys.primary, keys.secondary) else self._plain(401, "key_auth_access_denied")
        if mode == "amltoken":
            expiry = self._endpoint_tokens.get(endpoint, {}).get(token)
            return None if expiry and expiry > time.time() else self._plain(401, "aml_token_access_denied")
        return None  # AADToken: the fake does not check Entra ID tokens on the data plane

    def _no_healthy_replica(self, deployment: str) -> Response:
        # Managed endpoints answer 424 when the model container does not answer 200,
        # naming its status in ms-azureml-model-error-statuscode (troubleshooting
        # guide, "HTTP status codes"); the reason text is the fake's.
        response = self._plain(424, f"Deployment {deployment} has no healthy replica to serve the request.")
        response.headers["ms-azureml-model-error-statuscode"] = "503"
        response.headers["ms-azureml-model-error-reason"] = "no_healthy_upstream"
        response.headers["azureml-model-deployment"] = deployment
        return response

    def _forward(self, endpoint: str, deployment: str, backend: str, request: Request) -> Response:
        """Pass the request to the deployment's backend and stream its answer back."""
        assert self._http is not None
        base = backend.rstrip("/").removesuffix("/score")
        url = base + request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() in self._FORWARD_REQUEST_HEADERS}
        try:
            upstream = self._http.send(
                self._http.build_request(request.method, url, content=request.get_data(), headers=headers),
                stream=True,
            )
        except httpx.HTTPError:
            return self._scored(endpoint, deployment, request, self._no_healthy_replica(deployment))

        def body() -> Iterator[bytes]:
            try:
                yield from upstream.iter_raw()
            finally:
                upstream.close()

        response = Response(body(), status=upstream.status_code, direct_passthrough=True)
        for name, value in upstream.headers.items():
            if name.lower() in self._FORWARD_RESPONSE_HEADERS:
                response.headers[name] = value
        if "content-length" in upstream.headers:
            response.headers["Content-Length"] = upstream.headers["content-length"]
        response.headers["azureml-model-deployment"] = deployment  # Azure names the deployment that answered
        return self._scored(endpoint, deployment, request, response, model_status=upstream.status_code)

    def _scored(
        self,
        endpoint: str,
        deployment: str | None,
        request: Request,
        response: Response,
        model_status: int | None = None,
    ) -> Response:
        response.headers.setdefault("x-request-id", str(uuid.uuid4()))
        received_at, started = request.environ.get(RECEIVED_KEY, (_now(), time.perf_counter()))
        if model_status is None and "ms-azureml-model-error-statuscode" in response.headers:
            model_status = int(response.headers["ms-azureml-model-error-statuscode"])
        with self._lock:
            self.scoring_requests.append(
                ScoringRequest(
                    endpoint,
                    deployment,
                    request.method,
                    request.path,
                    response.status_code,
                    at=received_at,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    model_status=model_status,
                )
            )
        return response

    @staticmethod
    def _plain(status: int, text: str) -> Response:
        return Response(text, status=status, mimetype="text/plain")

    def _request_fault(self, request: Request) -> Response | None:
        """A throttle or fail rule matching this request, answered as ARM (or storage) would."""
        rule = self._take_rule(("throttle", "fail"), request.method, request.path)
        if rule is None:
            return None
        self._record(request, body=None)
        self._fired(rule.fault, request.method, request.path, status=rule.status)
        if rule.fault == "throttle":
            response = self._arm_error(
                429,
                "SubscriptionRequestsThrottled",
                throttle_message(request.method, self.subscription_id, rule.retry_after),
            )
            response.headers.update(throttle_headers(request.method, rule.retry_after))
            return response
        return self._arm_error(rule.status, rule.code, rule.message)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith(f"/{self.storage_account}/"):
            self._record(request, body=request.content_length)
            if request.method == "PUT":
                self._delay_upload(request.method, path)
            return self._blob(request)
        body = request.get_json(silent=True) if request.data else None
        self._record(request, body=body)
        self._check_injected_failure(request)
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            raise _ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        problem = self._token_expiry_problem(authorization)
        if problem is not None:
            self._fired("expired_token", request.method, path, code=problem[0])
            response = self._arm_error(401, *problem)
            response.headers.update(expired_token_headers(self.tenant_id, problem[0]))
            raise _Answer(response)
        if "api-version" not in request.args:
            raise _ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        match = re.fullmatch(
            rf"/subscriptions/[^/]+/providers/{ARM_PROVIDER}/locations/[^/]+/(mfeOperationsStatus|mfeOperationResults)/([^/]+)",
            path,
            re.IGNORECASE,
        )
        if match:
            return self._operation_status(match.group(2), as_location=match.group(1).endswith("Results"))
        match = re.fullmatch(
            rf"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/{ARM_PROVIDER}/workspaces/([^/]+)(/.*)?",
            path,
            re.IGNORECASE,
        )
        if match:
            sub, rg, ws, rest = match.groups()
            if (sub.lower(), rg.lower(), ws.lower()) != (
                self.subscription_id.lower(),
                self.resource_group.lower(),
                self.workspace_name.lower(),
            ):
                raise _ArmError(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{ARM_PROVIDER}/workspaces/{ws}' under resource group '{rg}' was not found.",
                )
            return self._workspace_route(request, rest or "", body)
        return self._unhandled(request)

    def _workspace_route(self, request: Request, rest: str, body: Any) -> Response:
        m = request.method
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"", lambda: self._json(self._workspace_resource())),
            ("GET", r"/models/([^/]+)", self._get_model_container),
            ("GET", r"/models/([^/]+)/versions", lambda n: self._list_model_versions(n, request.args.get("$top"))),
            ("GET", r"/models/([^/]+)/versions/([^/]+)", self._get_model_version),
            ("PUT", r"/models/([^/]+)/versions/([^/]+)", lambda n, v: self._put_model_version(n, v, body)),
            ("GET", r"/datastores", lambda: self._json({"value": [self._datastore_resource()]})),
            ("GET", r"/datastores/([^/]+)", self._get_datastore),
            ("POST", r"/datastores/([^/]+)/listSecrets", self._list_datastore_secrets),
            ("GET", r"/onlineEndpoints", self._list_endpoints),
            ("GET", r"/onlineEndpoints/([^/]+)", lambda e: self._json(self._endpoint_or_404(e))),
            ("PUT", r"/onlineEndpoints/([^/]+)", lambda e: self._put_endpoint(e, body)),
            ("DELETE", r"/onlineEndpoints/([^/]+)", self._delete_endpoint),
            ("POST", r"/onlineEndpoints/([^/]+)/listKeys", self._list_keys),
            ("POST", r"/onlineEndpoints/([^/]+)/regenerateKeys", lambda e: self._regenerate_keys(e, body)),
            ("POST", r"/onlineEndpoints/([^/]+)/token", self._endpoint_token),
            ("GET", r"/onlineEndpoints/([^/]+)/deployments", self._list_deployments),
            ("GET", r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", self._get_deployment),
            ("PUT", r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", lambda e, d: self._put_deployment(e, d, body)),
            ("DELETE", r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", self._delete_deployment),
            ("POST", r"/onlineEndpoints/([^/]+)/deployments/([^/]+)/getLogs", lambda e, d: self._logs(e, d, body)),
            (
                "GET",
                r"/onlineEndpoints/([^/]+)/providers/Microsoft\.Insights/metrics",
                functools.partial(self._metrics, request=request),
            ),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, rest.rstrip("/"), re.IGNORECASE)
            if match and method == m:
                with self._lock:
                    return handler(*match.groups())
        return self._unhandled(request)

    def _record(self, request: Request, body: Any) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(request.method, request.path, dict(request.args), body, time.monotonic())
            )

    def _check_injected_failure(self, request: Request) -> None:
        """No-op: fail_next_request is a FaultSwitches rule now (checked in _request_fault)."""

    def _unhandled(self, request: Request) -> Response:
        with self._lock:
            self.unhandled.append(f"{request.method} {request.path}")
        return self._arm_error(404, "NotFound", f"The fake Azure ML has no route for {request.method} {request.path}.")

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps(payload), status=status, mimetype="application/json")
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def _arm_error(self, status: int, code: str, message: str) -> Response:
        # ARM's error envelope; azure-core's HttpResponseError reads code and message from it.
        return self._json({"error": {"code": code, "message": message, "details": [], "additionalInfo": []}}, status)

    # ------------------------------------------------------------------ workspace, datastore

    def _workspace_resource(self) -> dict[str, Any]:
        rg_path = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
        return {
            "id": self.workspace_path,
            "name": self.workspace_name,
            "type": f"{ARM_PROVIDER}/workspaces",
            "location": self.location,
            "kind": "Default",
            "tags": {},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4())},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "friendlyName": self.workspace_name,
                "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.workspace_path)),
                "provisioningState": "Succeeded",
                "storageAccount": f"{rg_path}/providers/Microsoft.Storage/storageAccounts/{self.storage_account}",
                "discoveryUrl": f"{self.base_url}/discovery",
                "publicNetworkAccess": "Enabled",
            },
        }

    def _datastore_resource(self) -> dict[str, Any]:
        return {
            "id": f"{self.workspace_path}/datastores/workspaceblobstore",
            "name": "workspaceblobstore",
            "type": f"{ARM_PROVIDER}/workspaces/datastores",
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": self.storage_account,
                "containerName": self.blob_container,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "credentials": {"credentialsType": "Sas"},
                "isDefault": True,
                "serviceDataAccessAuthIdentity": "None",
                "description": "",
                "properties": {},
                "tags": {},
            },
        }

    def _get_datastore(self, name: str) -> Response:
        if name.lower() != "workspaceblobstore":
            raise _ArmError(404, "UserError", f"Datastore {name} not found.")
        return self._json(self._datastore_resource())

    def _list_datastore_secrets(self, name: str) -> Response:
        self._get_datastore(name)
        expiry = "2099-01-01T00:00:00Z"
        sas = f"sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se={expiry}&spr=https&sig={self._sas_signature}"
        return self._json({"secretsType": "Sas", "sasToken": sas})

    # ------------------------------------------------------------------ models

    def _get_model_container(self, name: str) -> Response:
        versions = [v for (n, v) in self._models if n == name]
        if not versions:
            raise _ArmError(404, "UserError", f"Could not find asset with ID: {name}")
        numeric = [int(v) for v in versions if v.isdigit()]
        latest = max(self._models[(name, v)]["_created"] for v in versions)
        latest_version = next(v for v in versions if self._models[(name, v)]["_created"] == latest)
        return self._json(
            {
                "id": f"{self.workspace_path}/models/{name}",
                "name": name,
                "type": f"{ARM_PROVIDER}/workspaces/models",
                "properties": {
                    "latestVersion": latest_version,
                    "nextVersion": str(max(numeric, default=0) + 1),
                    "isArchived": False,
                    "description": None,
                    "tags": {},
                    "properties": {},
                },
            }
        )

    def _model_public(self, stored: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in stored.items() if not key.startswith("_")}

    def _list_model_versions(self, name: str, top: str | None) -> Response:
        stored = sorted((m for (n, _), m in self._models.items() if n == name), key=lambda m: -m["_created"])
        if top and top.isdigit():
            stored = stored[: int(top)]
        return self._json({"value": [self._model_public(m) for m in stored]})

    def _get_model_version(self, name: str, version: str) -> Response:
        stored = self._models.get((name, version))
        if stored is None:
            raise _ArmError(404, "UserError", f"Could not find asset with ID: {name}:{version}")
        return self._json(self._model_public(stored))

    def _put_model_version(self, name: str, version: str, body: dict[str, Any] | None) -> Response:
        if not body or "properties" not in body:
            raise _ArmError(400, "UserError", "The request body must carry properties.")
        existing = self._models.get((name, version))
        properties = dict(body["properties"])
        # The SDK crashes on a model version answer without flavors.
        properties.setdefault("flavors", {})
        properties.setdefault("properties", {})
        properties.setdefault("tags", {})
        properties.update({"provisioningState": "Succeeded", "isArchived": False})
        resource = {
            "id": f"{self.workspace_path}/models/{name}/versions/{version}",
            "name": version,
            "type": f"{ARM_PROVIDER}/workspaces/models/versions",
            "properties": properties,
            "systemData": self._system_data(),
            "_created": existing["_created"] if existing else time.monotonic(),
        }
        self._models[(name, version)] = resource
        return self._json(self._model_public(resource), 200 if existing else 201)

    def _model_blob_prefix(self, model_arm_id: str) -> tuple[str, str]:
        """``(model_uri, blob prefix)`` of the model version a deployment names."""
        match = re.search(r"/models/([^/]+)/versions/([^/]+)$", model_arm_id or "", re.IGNORECASE)
        stored = self._models.get(match.groups()) if match else None
        if stored is None:
            raise _ArmError(400, "BadArgument", f"Model {model_arm_id!r} was not found in this workspace.")
        model_uri = stored["properties"].get("modelUri", "")
        # azureml://[subscriptions/.../workspaces/ws/]datastores/<ds>/paths/<blob prefix>
        match = re.search(r"/datastores/[^/]+/paths/(.+)$", model_uri)
        if not match:
            raise _ArmError(400, "BadArgument", f"The fake only serves models uploaded to a datastore: {model_uri!r}.")
        return model_uri, match.group(1).rstrip("/")

    def _materialize_model(self, blob_prefix: str, destination: Path) -> Path:
        """Copy the blobs under ``blob_prefix`` into ``destination``, by relative path."""
        shutil.rmtree(destination, ignore_errors=True)
        destination.mkdir(parents=True)
        container_prefix = f"{self.blob_container}/"
        with self._lock:
            blobs = {
                k[len(container_prefix) :]: b.data for k, b in self._blobs.items() if k.startswith(container_prefix)
            }
        for name, data in blobs.items():
            if name == blob_prefix:  # the model is a single file
                relative = PurePosixPath(name).name
            elif name.startswith(blob_prefix + "/"):
                relative = name[len(blob_prefix) + 1 :]
            else:
                continue
            target = destination.joinpath(*PurePosixPath(relative).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return destination

    # ------------------------------------------------------------------ blob storage (path-style)

    def _blob(self, request: Request) -> Response:
        parts = request.path.split("/", 3)  # "", account, container, blob
        if len(parts) < 4 or not parts[3]:
            return self._unhandled(request)
        if request.args.get("sig") != self._sas_signature:
            return self._storage_error(403, "AuthenticationFailed", "Server failed to authenticate the request.")
        key = f"{parts[2]}/{parts[3]}"
        comp = request.args.get("comp")
        with self._lock:
            blob = self._blobs.get(key)
            if request.method in {"HEAD", "GET"}:
                if blob is None:
                    return self._storage_error(404, "BlobNotFound", "The specified blob does not exist.")
                response = Response(b"" if request.method == "HEAD" else blob.data, status=200)
                response.headers.update(self._blob_headers(blob))
                response.headers["Content-Length"] = str(len(blob.data))
                response.headers["Content-Type"] = blob.content_type
                return response
            if request.method != "PUT":
                return self._unhandled(request)
            if comp == "metadata":
                if blob is None:
                    return self._storage_error(404, "BlobNotFound", "The specified blob does not exist.")
                blob.metadata = self._metadata_from(request)
                blob.etag = f'"0x{secrets.token_hex(8).upper()}"'
                blob.last_modified = _now()
                # Set Blob Metadata answers 200 (not 201): the SDK checks.
                return self._blob_response(blob, 200)
            if comp == "block":
                self._staged_blocks[(key, request.args["blockid"])] = request.get_data()
                return self._blob_response(None, 201)
            if blob is not None and request.headers.get("If-None-Match") == "*":
                return self._storage_error(409, "BlobAlreadyExists", "The specified blob already exists.")
            if comp == "blocklist":
                root = ElementTree.fromstring(request.get_data())  # noqa: S314 - our own client's XML
                data = b"".join(self._staged_blocks.pop((key, element.text or ""), b"") for element in root)
            else:
                data = request.get_data()
            blob = _Blob(
                data=data,
                metadata=self._metadata_from(request),
                content_type=request.headers.get("x-ms-blob-content-type", "application/octet-stream"),
                etag=f'"0x{secrets.token_hex(8).upper()}"',
                last_modified=_now(),
            )
            self._blobs[key] = blob
            return self._blob_response(blob, 201)

    @staticmethod
    def _metadata_from(request: Request) -> dict[str, str]:
        raw_headers = request.environ.get(RAW_HEADERS_KEY, request.headers.items())
        return {
            name[len("x-ms-meta-") :]: value for name, value in raw_headers if name.lower().startswith("x-ms-meta-")
        }

    @staticmethod
    def _blob_headers(blob: _Blob) -> dict[str, str]:
        headers = {
            "ETag": blob.etag,
            "Last-Modified": blob.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": "2021-08-06",
            "x-ms-request-id": str(uuid.uuid4()),
            "Content-MD5": base64.b64encode(hashlib.md5(blob.data).digest()).decode(),  # noqa: S324 - Azure's checksum
        }
        headers.update({f"x-ms-meta-{name}": value for name, value in blob.metadata.items()})
        return headers

    def _blob_response(self, blob: _Blob | None, status: int) -> Response:
        response = Response(b"", status=status)
        if blob is not None:
            response.headers.update(self._blob_headers(blob))
        response.headers["x-ms-request-server-encrypted"] = "true"
        return response

    @staticmethod
    def _storage_error(status: int, code: str, message: str) -> Response:
        # Storage's error shape: the code travels in x-ms-error-code (HEAD answers have no body).
        xml = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        response = Response(xml, status=status, mimetype="application/xml")
        response.headers["x-ms-error-code"] = code
        return response

    # ------------------------------------------------------------------ long-running operations

    def _start_operation(
        self, kind: str, work: Callable[[], None], on_failure: Callable[[dict[str, str]], None] | None = None
    ) -> _Operation:
        """Run ``work`` in a background thread; a queued injected failure replaces it.

        ``work`` applies the resource's success state itself. If it raises
        (DeployError, _ArmError, anything), ``on_failure(error)`` applies the
        failure state. Both happen before the operation reports its final
        status, so a client that sees "Succeeded"/"Failed" and then GETs the
        resource never reads a stale provisioningState.
        """
        operation = _Operation(id=str(uuid.uuid4()), kind=kind)
        if self.long_operation_s > 0:
            operation.hold_s = self.long_operation_s
            operation.retry_after = self.long_operation_retry_after
        self._operations[operation.id] = operation
        queued = self._failures.get(kind)
        injected = queued.pop(0) if queued else None

        def run() -> None:
            try:
                if operation.hold_s:
                    # long_operations: the work (and the resource's final state) comes after the hold,
                    # so a GET of the resource never runs ahead of its operation.
                    time.sleep(operation.hold_s)
                if injected is not None:
                    raise DeployError(*injected)
                work()
            except (DeployError, _ArmError) as err:
                operation.error = {"code": err.code, "message": err.message}
            except Exception as err:  # any failure of the hook is the operation's failure
                operation.error = {"code": "DeploymentFailed", "message": f"{type(err).__name__}: {err}"}
            try:
                if operation.error and on_failure is not None:
                    with self._lock:
                        on_failure(operation.error)
            finally:
                operation.finished.set()

        worker = threading.Thread(target=run, name=f"fake-azureml-{kind}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        return operation

    def _lro_headers(self, operation: _Operation) -> dict[str, str]:
        prefix = (
            f"{self.base_url}/subscriptions/{self.subscription_id}/providers/{ARM_PROVIDER}/locations/{self.location}"
        )
        query = "?api-version=2025-12-01"
        return {
            "Azure-AsyncOperation": f"{prefix}/mfeOperationsStatus/{operation.id}{query}",
            "Location": f"{prefix}/mfeOperationResults/{operation.id}{query}",
            **self._retry_headers(operation),
            "x-ms-async-operation-timeout": "PT1H",
        }

    @staticmethod
    def _retry_headers(operation: _Operation) -> dict[str, str]:
        if operation.retry_after is not None:
            return {"Retry-After": str(operation.retry_after)}  # ARM's whole seconds
        # azure-core treats "Retry-After: 0" as absent and would sleep the
        # SDK's default 5-30 s; a millisecond hint keeps polling fast.
        return {"retry-after-ms": "1"}

    def _operation_status(self, operation_id: str, *, as_location: bool) -> Response:
        with self._lock:
            operation = self._operations.get(operation_id)
            if operation is None:
                raise _ArmError(404, "NotFound", f"Operation {operation_id} not found.")
            running = not operation.finished.is_set() or operation.polls < self.in_progress_polls
            operation.polls += 1
        headers = self._retry_headers(operation)
        if running:
            headers.update(
                {k: v for k, v in self._lro_headers(operation).items() if k in ("Azure-AsyncOperation", "Location")}
            )
            if operation.hold_s:
                self._fired("long_operation", "GET", operation.id, kind=operation.kind)
        if as_location:  # Location polling: 202 while running, then the final answer
            if running:
                return self._json({}, 202, headers)
            if operation.error:
                return self._arm_error(400, operation.error["code"], operation.error["message"])
            return Response(b"", status=200)
        status = "InProgress" if running else ("Failed" if operation.error else "Succeeded")
        payload: dict[str, Any] = {"id": operation.id, "name": operation.id, "status": status}
        if status == "Failed":
            payload["error"] = {**operation.error, "details": [], "additionalInfo": []}
        return self._json(payload, 200, headers)

    # ------------------------------------------------------------------ online endpoints

    def _endpoint_or_404(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise _ArmError(404, "UserError", f"Online endpoint {name} not found.")
        return endpoint

    def _system_data(self) -> dict[str, Any]:
        now = _iso()
        return {
            "createdAt": now,
            "createdBy": "fake@example.invalid",
            "createdByType": "User",
            "lastModifiedAt": now,
            "lastModifiedBy": "fake@example.invalid",
            "lastModifiedByType": "User",
        }

    def _list_endpoints(self) -> Response:
        return self._json({"value": [copy.deepcopy(e) for e in self._endpoints.values()]})

    def _put_endpoint(self, name: str, body: dict[str, Any] | None) -> Response:
        if not body or "properties" not in body:
            raise _ArmError(400, "BadArgument", "The request body must carry properties.")
        existing = self._endpoints.get(name)
        if existing and existing["properties"]["provisioningState"] in {"Creating", "Updating", "Deleting"}:
            raise _ArmError(409, "Conflict", f"Endpoint {name} has an operation in progress.")
        properties = copy.deepcopy(body["properties"])
        traffic = {dep: int(pct) for dep, pct in (properties.get("traffic") or {}).items()}
        self._validate_traffic(name, traffic, existing is not None)
        properties["traffic"] = traffic
        properties.setdefault("mirrorTraffic", {})
        properties.setdefault("properties", {})  # the SDK needs it whenever systemData is sent
        properties.setdefault("publicNetworkAccess", "Enabled")
        properties["authMode"] = properties.get("authMode") or "Key"
        properties["provisioningState"] = "Updating" if existing else "Creating"
        resource = {
            "id": f"{self.workspace_path}/onlineEndpoints/{name}",
            "name": name,
            "type": f"{ARM_PROVIDER}/workspaces/onlineEndpoints",
            "location": body.get("location") or self.location,
            "kind": body.get("kind"),
            "tags": body.get("tags") or {},
            "identity": body.get("identity")
            or {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4())},
            "properties": properties,
            "systemData": existing["systemData"] if existing else self._system_data(),
        }
        if resource["kind"] is None:
            del resource["kind"]
        self._endpoints[name] = resource
        if name not in self._keys:
            self._keys[name] = EndpointKeys(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        self._refresh_scoring_uri(name)

        def finish() -> None:
            with self._lock:
                current = self._endpoints.get(name)
                if current is not None:
                    current["properties"]["provisioningState"] = "Succeeded"

        operation = self._start_operation("endpoint", finish, lambda _: self._set_endpoint_state(name, "Failed"))
        return self._json(copy.deepcopy(resource), 200 if existing else 201, self._lro_headers(operation))

    def _validate_traffic(self, endpoint: str, traffic: dict[str, int], exists: bool) -> None:
        # Wording is the fake's; the rules (known deployments, 0..100, sum 100) are Azure's.
        for deployment, pct in traffic.items():
            if not 0 <= pct <= 100:
                raise _ArmError(400, "BadArgument", f"Traffic for deployment {deployment} must be within 0..100.")
            if not exists or (endpoint, deployment) not in self._deployments:
                raise _ArmError(400, "BadArgument", f"Deployment {deployment} does not exist in endpoint {endpoint}.")
        total = sum(traffic.values())
        if traffic and total not in {0, 100}:
            raise _ArmError(400, "BadArgument", f"Traffic values must sum to 100 (they sum to {total}).")

    def _set_endpoint_state(self, name: str, state: str) -> None:
        with self._lock:
            if name in self._endpoints:
                self._endpoints[name]["properties"]["provisioningState"] = state

    def _refresh_scoring_uri(self, endpoint: str) -> None:
        """scoringUri: the endpoint's one stable address, from creation on, as Azure's.

        Azure hands out ``https://<endpoint>.<region>.inference.ml.azure.com/score``
        (and ``.../swagger.json``) as soon as the endpoint exists, whether or not
        anything is deployed; the fake's front end (``_score``) routes requests
        to it by the traffic split or the ``azureml-model-deployment`` header.
        """
        resource = self._endpoints.get(endpoint)
        if resource is None:
            return
        uri = self.scoring_uri(endpoint)
        resource["properties"]["scoringUri"] = uri
        resource["properties"]["swaggerUri"] = uri.removesuffix("/score") + "/swagger.json"

    def _delete_endpoint(self, name: str) -> Response:
        resource = self._endpoint_or_404(name)
        resource["properties"]["provisioningState"] = "Deleting"
        for (ep, _), deployment in self._deployments.items():
            if ep == name:
                deployment.body["properties"]["provisioningState"] = "Deleting"

        def work() -> None:
            with self._lock:
                doomed = [(ep, dep) for (ep, dep) in self._deployments if ep == name]
            for _, dep in doomed:
                self._teardown_deployment(name, dep)
            with self._lock:
                self._endpoints.pop(name, None)
                self._keys.pop(name, None)

        def failed(_: dict[str, str]) -> None:
            self._set_endpoint_state(name, "Failed")
            for (ep, _name), deployment in self._deployments.items():
                if ep == name:  # what survived the failed delete
                    deployment.body["properties"]["provisioningState"] = "Failed"

        operation = self._start_operation("delete_endpoint", work, failed)
        return Response(b"", status=202, headers=self._lro_headers(operation))

    def _list_keys(self, name: str) -> Response:
        self._endpoint_or_404(name)
        keys = self._keys[name]
        return self._json({"primaryKey": keys.primary, "secondaryKey": keys.secondary})

    def _regenerate_keys(self, name: str, body: dict[str, Any] | None) -> Response:
        self._endpoint_or_404(name)
        body = body or {}
        keys = self._keys[name]
        primary = (body.get("keyType") or "Primary").lower() == "primary"
        current = keys.primary if primary else keys.secondary
        # azure-ai-ml 1.35.2's begin_regenerate_keys sends the CURRENT key as
        # keyValue; taken literally that would change nothing, so the fake
        # treats it as "generate a new one" and only honours a different value.
        requested = body.get("keyValue")
        new_value = requested if requested and requested != current else secrets.token_urlsafe(24)
        self._keys[name] = EndpointKeys(new_value, keys.secondary) if primary else EndpointKeys(keys.primary, new_value)
        operation = self._start_operation("regenerate_keys", lambda: None)
        return Response(b"", status=202, headers=self._lro_headers(operation))

    def _endpoint_token(self, name: str) -> Response:
        self._endpoint_or_404(name)
        now = int(time.time())
        token = secrets.token_urlsafe(32)
        self._endpoint_tokens.setdefault(name, {})[token] = now + 3600
        return self._json(
            {
                "accessToken": token,
                "expiryTimeUtc": now + 3600,
                "refreshAfterTimeUtc": now + 1800,
                "tokenType": "Bearer",
            }
        )

    # ------------------------------------------------------------------ online deployments

    def _deployment_or_404(self, endpoint: str, name: str) -> _Deployment:
        self._endpoint_or_404(endpoint)
        deployment = self._deployments.get((endpoint, name))
        if deployment is None:
            raise _ArmError(404, "UserError", f"Deployment {name} not found in endpoint {endpoint}.")
        return deployment

    def _get_deployment(self, endpoint: str, name: str) -> Response:
        return self._json(copy.deepcopy(self._deployment_or_404(endpoint, name).body))

    def _list_deployments(self, endpoint: str) -> Response:
        self._endpoint_or_404(endpoint)
        value = [copy.deepcopy(d.body) for (ep, _), d in self._deployments.items() if ep == endpoint]
        return self._json({"value": value})

    def _put_deployment(self, endpoint: str, name: str, body: dict[str, Any] | None) -> Response:
        endpoint_resource = self._endpoint_or_404(endpoint)
        if endpoint_resource["properties"]["provisioningState"] == "Deleting":
            raise _ArmError(409, "Conflict", f"Endpoint {endpoint} is being deleted.")
        if not body or "properties" not in body:
            raise _ArmError(400, "BadArgument", "The request body must carry properties.")
        existing = self._deployments.get((endpoint, name))
        if existing and existing.body["properties"]["provisioningState"] in {"Creating", "Updating", "Deleting"}:
            raise _ArmError(409, "Conflict", f"Deployment {name} has an operation in progress.")
        properties = copy.deepcopy(body["properties"])
        compute_type = properties.get("endpointComputeType")
        on_kubernetes = bool(endpoint_resource["properties"].get("compute"))
        if compute_type not in {"Kubernetes", "Managed"}:
            raise _ArmError(400, "BadArgument", f"Unsupported endpointComputeType {compute_type!r}.")
        if (compute_type == "Kubernetes") != on_kubernetes:
            raise _ArmError(
                400, "BadArgument", f"A {compute_type} deployment cannot go into endpoint {endpoint} of another kind."
            )
        _, blob_prefix = self._model_blob_prefix(properties.get("model", ""))
        # The SDK's PUT body lacks these two, yet crashes on an answer without them.
        properties.setdefault("scaleSettings", {"scaleType": "Default"})
        if compute_type == "Kubernetes":
            properties.setdefault("containerResourceRequirements", {})
        properties.setdefault("properties", {})
        properties["provisioningState"] = "Updating" if existing else "Creating"
        resource = {
            "id": f"{self.workspace_path}/onlineEndpoints/{endpoint}/deployments/{name}",
            "name": name,
            "type": f"{ARM_PROVIDER}/workspaces/onlineEndpoints/deployments",
            "location": body.get("location") or self.location,
            "tags": body.get("tags") or {},
            "properties": properties,
            "systemData": existing.body["systemData"] if existing else self._system_data(),
        }
        for optional in ("kind", "sku", "identity"):
            if body.get(optional) is not None:
                resource[optional] = body[optional]
        if existing:
            self.update_calls += 1
            existing.body = resource
            existing.error = None
            deployment = existing
        else:
            self.create_calls += 1
            deployment = _Deployment(body=resource)
            self._deployments[(endpoint, name)] = deployment
        deployment.logs.append(f"{_iso()} fake-azureml: {properties['provisioningState'].lower()} deployment {name}")
        provisioning_failure = self._take_provisioning_failure()

        def work() -> None:
            if provisioning_failure is not None:
                self._fail_provisioning(deployment, name, provisioning_failure, compute_type == "Kubernetes")
            # A fresh folder per attempt: an update must not pull the files from
            # under the version still serving (Azure rolls updates over too).
            files_dir = self._materialize_model(
                blob_prefix, self._tmp / "model-files" / endpoint / name / uuid.uuid4().hex[:8]
            )
            deployment.logs.append(f"{_iso()} fake-azureml: model files ready in {files_dir}")
            deployment.deploy_attempted = True
            if self.on_deploy is None:
                url = f"{self.base_url}/inference/{endpoint}/{name}/score"
            else:
                url = self.on_deploy(endpoint, name, files_dir)
            with self._lock:
                deployment.scoring_url = url
                deployment.succeeded_at = time.monotonic()
                deployment.body["properties"]["provisioningState"] = "Succeeded"
                deployment.logs.append(f"{_iso()} fake-azureml: deployment {name} serving at {url}")
                self._refresh_scoring_uri(endpoint)

        def failed(error: dict[str, str]) -> None:
            deployment.body["properties"]["provisioningState"] = "Failed"
            deployment.error = dict(error)
            deployment.logs.append(
                f"{_iso()} fake-azureml: deployment {name} failed: ({error['code']}) {error['message']}"
            )

        operation = self._start_operation("deployment", work, failed)
        return self._json(copy.deepcopy(resource), 200 if existing else 201, self._lro_headers(operation))

    def _fail_provisioning(
        self, deployment: _Deployment, name: str, failure: ProvisioningFailure, kubernetes: bool
    ) -> None:
        """Run "a while" through the stages before ``failure.stage``, then fail with Azure's code for it."""
        code, message = provisioning_error(failure.stage, kubernetes)
        code, message = failure.code or code, failure.message or message
        log = deployment.logs
        log.append(f"{_iso()} fake-azureml: pulling image for deployment {name}")
        time.sleep(failure.after_seconds)
        if failure.stage == "image_pull":
            log.append(f"{_iso()} Failed to pull image: ImagePullBackOff")
        else:
            log.append(f"{_iso()} fake-azureml: image pulled; storage-initializer downloading the model")
            if failure.stage == "model_download":
                log.append(f"{_iso()} storage-initializer: failed to download the model: blob not found")
            else:
                log.append(f"{_iso()} fake-azureml: model downloaded; starting inference-server")
                log.append(f"{_iso()} Liveness probe failed: HTTP probe failed with statuscode: 502")
        self._fired("provisioning", "PUT", name, stage=failure.stage, code=code)
        raise DeployError(code, message)

    def _teardown_deployment(self, endpoint: str, name: str) -> None:
        """Call on_delete (outside the lock) and forget the deployment; errors propagate."""
        with self._lock:
            deployment = self._deployments.get((endpoint, name))
        if deployment is None:
            return
        if deployment.deploy_attempted and self.on_delete is not None:
            self.on_delete(endpoint, name)
        with self._lock:
            self._deployments.pop((endpoint, name), None)
            self._refresh_scoring_uri(endpoint)

    def _delete_deployment(self, endpoint: str, name: str) -> Response:
        deployment = self._deployment_or_404(endpoint, name)
        traffic = self._endpoints[endpoint]["properties"].get("traffic") or {}
        if traffic.get(name, 0) > 0:
            # Azure refuses to delete a deployment that still takes traffic (wording is the fake's).
            raise _ArmError(
                400,
                "BadArgument",
                f"Deployment {name} has {traffic[name]}% of the traffic of endpoint {endpoint}; "
                "set its traffic to 0 before deleting it.",
            )
        deployment.body["properties"]["provisioningState"] = "Deleting"

        def failed(error: dict[str, str]) -> None:
            deployment.body["properties"]["provisioningState"] = "Failed"
            deployment.error = dict(error)

        operation = self._start_operation(
            "delete_deployment", lambda: self._teardown_deployment(endpoint, name), failed
        )
        return Response(b"", status=202, headers=self._lro_headers(operation))

    def _logs(self, endpoint: str, name: str, body: dict[str, Any] | None) -> Response:
        deployment = self._deployment_or_404(endpoint, name)
        body = body or {}
        tail = int(body.get("tail") or 5000)
        if self.on_logs is not None:
            content = self.on_logs(endpoint, name, tail, body.get("containerType"))
        else:
            content = "\n".join(deployment.logs[-tail:]) if tail > 0 else ""
        return self._json({"content": content})

    # ------------------------------------------------------------------ Azure Monitor metrics

    def _metrics(self, endpoint: str, request: Request) -> Response:
        """Azure Monitor's metrics of the endpoint, from the requests its scoring address served."""
        name = next((n for n in self._endpoints if n.lower() == endpoint.lower()), None)
        if name is None:
            error = monitor.MetricsError(
                404,
                "ResourceNotFound",
                f"The Resource '{ARM_PROVIDER}/workspaces/{self.workspace_name}/onlineEndpoints/{endpoint}' "
                f"under resource group '{self.resource_group}' was not found.",
            )
            return self._json(error.body(), error.status)
        served = [
            monitor.Served(r.at, r.deployment, r.status, r.model_status, r.duration_ms)
            for r in self.scoring_requests
            if r.endpoint == name and r.at is not None
        ]
        try:
            body = monitor.answer(
                resource_id=f"{self.workspace_path}/onlineEndpoints/{name}",
                location=self.location,
                served=served,
                args=dict(request.args),
                now=_now(),
                delay_s=self.metrics_delay_s,
            )
        except monitor.MetricsError as error:
            # The metrics API answers errors flat, not in ARM's {"error": {...}} envelope.
            return self._json(error.body(), error.status)
        return self._json(body)


def provisioning_error(stage: str, kubernetes: bool) -> tuple[str, str]:
    """Azure's error code for a deployment that fails at ``stage`` (see README.md for the sources).

    Codes are from "Troubleshoot online endpoint deployment and scoring"
    (MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-troubleshoot-online-endpoints.md);
    the messages are the fake's, built from that page's section titles, with the
    troubleshooting link Azure appends (aka.ms/oe-tsg).
    """
    if stage == "image_pull":
        if kubernetes:
            return (
                "ImagePullLoopBackOff",
                "The deployment's image could not be pulled from the container registry (ImagePullBackOff). "
                "Please see troubleshooting guide, available here: https://aka.ms/oe-tsg#error-imagepullloopbackoff",
            )
        return (
            "BadArgument",
            "Unable to download user container image. "
            "Please see troubleshooting guide, available here: https://aka.ms/oe-tsg#error-badargument",
        )
    if stage == "model_download":
        return (
            "BadArgument",
            "Unable to download user model. Please see troubleshooting guide, available here: "
            "https://aka.ms/oe-tsg#error-badargument",
        )
    if stage == "liveness_probe":
        return (
            "ResourceNotReady",
            "User container has crashed or terminated. Please see troubleshooting guide, available here: "
            "https://aka.ms/oe-tsg#error-resourcenotready",
        )
    raise ValueError(f"unknown stage {stage!r}")


class FakeCredential:
    """The smallest credential azure-core accepts: ``get_token`` and nothing else."""

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken("fake-arm-token", int(time.time()) + 3600)


@contextlib.contextmanager
def use_fake_v2(fake: FakeAzureMLv2) -> Iterator[FakeAzureMLv2]:
    """Point azure-ai-ml in this process at ``fake``; restore everything on exit.

    * ``AZUREML_DEV_URL_MFE``: the ARM base URL, read whenever an MLClient is
      built (so build clients inside the block);
    * ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE``: overwritten (not
      setdefault: these machines already set the first) with the fake's
      certificate, which is its own CA, so ``requests`` (the SDK) and
      ``httpx`` (the engine's probes, tests) trust the fake's ARM address and
      its endpoints' scoring hosts ``*.<location>.<inference_host_suffix>``;
    * ``STORAGE_ACCOUNT_URLS["AzureBlob"]``: the SDK formats blob account URLs
      from this dict; path-style on the fake instead of ``{account}.blob.{suffix}``.

    Environment variables are process-wide: do not run two of these at once.
    """
    from azure.ai.ml.constants import _common

    saved_env = {name: os.environ.get(name) for name in ("AZUREML_DEV_URL_MFE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    saved_blob_url = _common.STORAGE_ACCOUNT_URLS["AzureBlob"]
    os.environ["AZUREML_DEV_URL_MFE"] = fake.base_url
    os.environ["REQUESTS_CA_BUNDLE"] = fake.ca_bundle_path
    os.environ["SSL_CERT_FILE"] = fake.ca_bundle_path
    # "{}" placeholders: account name, then the storage endpoint suffix (unused here).
    _common.STORAGE_ACCOUNT_URLS["AzureBlob"] = fake.base_url + "/{}"
    try:
        yield fake
    finally:
        _common.STORAGE_ACCOUNT_URLS["AzureBlob"] = saved_blob_url
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
