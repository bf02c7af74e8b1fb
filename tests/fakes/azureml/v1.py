"""An in-memory fake of the Azure ML SDK v1 control plane, served on 127.0.0.1.

The real ``azureml-core`` SDK runs unchanged against it: ARM (subscription
list, workspace, compute), discovery, the artifact service and blob storage
(model and source uploads), the Model Management Service (assets, models,
services, operations, keys, tokens, logs) and the environment service (the
curated ``AzureML-Triton`` environment). ARM and blob storage live on fixed
Azure hosts, so ``tests.fakes.azureml.routing.route_azure_to`` must be active
while the SDK talks to it; every other URL comes from the workspace's
discovery answer, which points at this server.

Deployments are real where it matters: creating a service calls
``on_deploy(service_name, model_dir)`` with the model files the SDK uploaded,
laid out on disk, and the URL it returns becomes the service's ``scoringUri``
(a test can start a real Triton there). Everything else is state in memory.

    fake = FakeAzureMLv1(on_deploy=start_triton, on_delete=stop_triton)
    fake.start()
    with route_azure_to(fake):
        ws = Workspace(fake.subscription_id, fake.resource_group, fake.workspace_name,
                       auth=ArmTokenAuthentication(make_arm_token(), cloud="AzureCloud"))
        ...
    fake.stop()
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from hashlib import md5
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .faults import (
    V1_UPLOAD_TIMEOUT_S,
    FaultSwitches,
    FaultyRequestHandler,
    ProvisioningFailure,
    expired_token_headers,
    throttle_headers,
    throttle_message,
)

log = logging.getLogger(__name__)

OnDeploy = Callable[[str, Path], str]
OnDelete = Callable[[str], None]

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-00000000a001"
DEFAULT_TENANT = "00000000-0000-0000-0000-00000000c001"
_ML = "providers/Microsoft.MachineLearningServices/workspaces"
# Service states the SDK knows; "Transitioning" until a deployment settles.
TRANSITIONING, HEALTHY, UNHEALTHY, FAILED = "Transitioning", "Healthy", "Unhealthy", "Failed"
LIVENESS_502 = "Liveness probe failed: HTTP probe failed with statuscode: 502"


def make_arm_token(tenant_id: str = DEFAULT_TENANT, lifetime_s: int = 3600) -> str:
    """A JWT-shaped, unsigned ARM access token: ArmTokenAuthentication reads its claims, nobody checks a signature."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": "https://management.azure.com/",
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "tid": tenant_id,
        "oid": "00000000-0000-0000-0000-00000000b001",
        "upn": "tests@example.invalid",
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'fake'})}"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: str, message: str, status: int = 400, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An MMS error object, the shape the SDK prints from operations and services."""
    return {"code": code, "statusCode": status, "message": message, "details": details or []}


def _merge(defaults: Any, given: Any) -> Any:
    """Fill the SDK's create payload (full of nulls) with the defaults Azure applies."""
    if isinstance(defaults, dict) and isinstance(given, dict):
        return {key: _merge(defaults.get(key), given.get(key)) for key in defaults.keys() | given.keys()}
    return defaults if given is None else given


_AKS_DEFAULTS: dict[str, Any] = {
    "appInsightsEnabled": False,
    "authEnabled": True,  # AKS web services have key auth on unless told otherwise
    "aadAuthEnabled": False,
    "autoScaler": {
        "autoscaleEnabled": True,
        "minReplicas": 1,
        "maxReplicas": 10,
        "refreshPeriodInSeconds": 1,
        "targetUtilization": 70,
    },
    "containerResourceRequirements": {
        "cpu": 0.1,
        "cpuLimit": None,
        "memoryInGB": 0.5,
        "memoryInGBLimit": None,
        "gpu": 0,
    },
    "livenessProbeRequirements": {
        "periodSeconds": 10,
        "initialDelaySeconds": 310,
        "timeoutSeconds": 2,
        "successThreshold": 1,
        "failureThreshold": 3,
    },
    "dataCollection": {"eventHubEnabled": False, "storageEnabled": False},
    "maxConcurrentRequestsPerContainer": 1,
    "maxQueueWaitMs": 500,
    "numReplicas": None,
    "scoringTimeoutMs": 60000,
    "namespace": None,
}

# The curated environment as Environment.get returns it (shape of the real
# definition; package pins are illustrative). Served for "AzureML-Triton".
_TRITON_ENVIRONMENT: dict[str, Any] = {
    "name": "AzureML-Triton",
    "version": "1",
    "assetId": None,
    "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
    "python": {
        "userManagedDependencies": False,
        "interpreterPath": "python",
        "condaDependenciesFile": None,
        "baseCondaEnvironment": None,
        "condaDependencies": {
            "name": "project_environment",
            "channels": ["conda-forge"],
            "dependencies": [
                "python=3.8",
                {"pip": ["azureml-core", "azureml-defaults", "tritonclient[http]", "numpy"]},
            ],
        },
    },
    "docker": {
        "enabled": False,
        "baseImage": "mcr.microsoft.com/azureml/aml-triton:latest",
        "platform": {"os": "Linux", "architecture": "amd64"},
        "baseDockerfile": None,
        "baseImageRegistry": {"address": None, "username": None, "password": None},
        "sharedVolumes": True,
        "shmSize": None,
        "arguments": [],
    },
    "spark": {"repositories": [], "packages": [], "precachePackages": True},
    "databricks": {
        "mavenLibraries": [],
        "pypiLibraries": [],
        "rcranLibraries": [],
        "jarLibraries": [],
        "eggLibraries": [],
    },
    "r": None,
    "inferencingStackVersion": None,
}


@dataclass
class InjectedFailure:
    code: str
    message: str
    stage: str  # "validate" | "create" | "operation"
    service_state: str = FAILED
    http_status: int = 400
    details: list[dict[str, str]] = field(default_factory=list)


@dataclass
class FakeModel:
    name: str
    version: int
    asset_id: str
    framework: str | None
    framework_version: str | None
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    unpack: bool
    created: datetime

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass
class FakeOperation:
    id: str
    service_name: str
    created: datetime
    kind: str = "Deploy"
    state: str = "Running"
    error: dict[str, Any] | None = None
    polls: int = 0
    ended: datetime | None = None
    hold_until: float = 0.0  # long_operations: "Running" until this time.monotonic()
    retry_after: int | None = None


@dataclass
class FakeService:
    """One web service. ``request`` is the create payload exactly as the SDK sent it."""

    name: str
    request: dict[str, Any]
    primary_key: str
    secondary_key: str
    operation_id: str
    created: datetime
    updated: datetime
    state: str = TRANSITIONING
    error: dict[str, Any] | None = None
    scoring_uri: str | None = None
    deploy_dir: Path | None = None  # everything materialised for this deployment
    model_dir: Path | None = None  # what on_deploy received
    source_dir: Path | None = None  # the unpacked InferenceConfig source_directory, if any
    deployed: bool = False  # on_deploy was called: on_delete owes it a teardown
    reads_left: int = 1
    logs: list[str] = field(default_factory=list)
    settled: threading.Event = field(default_factory=threading.Event)

    @property
    def environment(self) -> dict[str, Any] | None:
        """The Environment of an entry-script deploy (None for a no-code deploy)."""
        return (self.request.get("environmentImageRequest") or {}).get("environment")

    @property
    def environment_variables(self) -> dict[str, str]:
        return dict((self.environment or {}).get("environmentVariables") or {})

    @property
    def entry_script(self) -> Path | None:
        """The scoring script on disk; the SDK names it in AZUREML_ENTRY_SCRIPT relative to the source root."""
        relative = self.environment_variables.get("AZUREML_ENTRY_SCRIPT")
        if not relative or self.source_dir is None:
            return None
        return self.source_dir.parent / relative

    @property
    def model_ids(self) -> list[str]:
        return list((self.request.get("environmentImageRequest") or {}).get("modelIds") or [])


class _QuietHandler(FaultyRequestHandler):
    """No access log: the SDK makes dozens of calls per flow; ``fake.requests`` records them instead."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Reply(Exception):
    """Raised inside a handler to answer at once with an error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


class FakeAzureMLv1(FaultSwitches):
    """The fake control plane. Thread-safe; all state lives on this object.

    The fault switches (``slow_upload``, ``long_operations``, ``throttle``,
    ``fail_next_request``, ``reset_next_request``, ``expire_tokens``,
    ``fail_provisioning``, ``turn_unhealthy``) are described in README.md.

    Args:
        on_deploy: ``(service_name, model_dir) -> scoring base URL``. Runs in a
            background thread once per created service; ``model_dir`` is laid
            out like AZUREML_MODEL_DIR (see ``_materialise``). If it
            raises, the service ends "Failed" with the message in ``error``;
            it must clean up after itself in that case.
        on_delete: ``(service_name) -> None``, called when a service whose
            on_deploy ran is deleted, overwritten, or left over at ``stop()``.
        scoring_path: appended to on_deploy's URL to form ``scoringUri``. Real
            AKS v1 URIs look like ``http://IP:80/api/v1/service/NAME/score``.
        transitioning_reads: single-service GETs that still answer
            "Transitioning" after a deployment settles. The default 1 is
            consumed by Model.deploy's own GET, so the object it returns says
            "Transitioning" and the next ``update_deployment_state()`` sees the end.
        running_polls: operation GETs that answer "Running" before the outcome
            (default 1). wait_for_deployment sleeps 5 s after each "Running";
            0 lets it return at once once the deployment has settled.
    """

    _upload_timeout_s = V1_UPLOAD_TIMEOUT_S

    def __init__(
        self,
        on_deploy: OnDeploy | None = None,
        on_delete: OnDelete | None = None,
        *,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        resource_group: str = "triton-rg",
        workspace_name: str = "triton-ws",
        location: str = "eastus",
        tenant_id: str = DEFAULT_TENANT,
        storage_account: str = "fakeamlstore",
        computes: tuple[str, ...] = ("aks-gpu",),
        scoring_path: str = "",
        transitioning_reads: int = 1,
        running_polls: int = 1,
    ):
        self.on_deploy = on_deploy or (lambda name, model_dir: f"http://127.0.0.1:9/{name}")
        self.on_delete = on_delete or (lambda name: None)
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace_name = workspace_name
        self.location = location
        self.tenant_id = tenant_id
        self.storage_account = storage_account
        self.computes = set(computes)
        self.scoring_path = scoring_path
        self.transitioning_reads = transitioning_reads
        self.running_polls = running_polls
        self.workspace_id = str(uuid.uuid4())
        self._init_faults()

        self.create_calls = 0  # POST /services, accepted or not
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.unhandled: list[tuple[str, str]] = []  # requests no route knew: a test should assert this stays empty

        self._lock = threading.RLock()
        self._blobs: dict[tuple[str, str, str], bytes] = {}  # (account, container, blob) -> bytes
        self._blocks: dict[tuple[str, str, str], dict[str, bytes]] = {}  # uncommitted blocks per blob
        self._artifacts: dict[str, dict[str, Any]] = {}  # "origin/container/path" -> artifact dto
        self._assets: dict[str, dict[str, Any]] = {}
        self._models: dict[str, FakeModel] = {}
        self._services: dict[str, FakeService] = {}
        self._operations: dict[str, FakeOperation] = {}
        self._failures: deque[InjectedFailure] = deque()
        self._threads: list[threading.Thread] = []
        self._deploy_seq = 0

        self._root: Path | None = None
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.base_url = ""
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAzureMLv1:
        """Serve on a free 127.0.0.1 port (threaded); ``base_url`` is set on return."""
        self._root = Path(tempfile.mkdtemp(prefix="fake-azureml-v1-"))
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._server.fake = self  # the request handler reads reset rules from it
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-azureml-v1", daemon=True
        )
        self._server_thread.start()
        return self

    def stop(self, *, teardown: bool = True) -> None:
        """Stop serving. With ``teardown`` (default), call on_delete for every service still deployed."""
        self.join_deployments()
        if teardown:
            for svc in list(self._services.values()):
                if svc.deployed:
                    self._call_on_delete(svc)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> FakeAzureMLv1:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    def fail_next_deploy(
        self,
        code: str = "QuotaExceeded",
        message: str = "Not enough quota available to deploy the service.",
        *,
        stage: str = "operation",
        service_state: str = FAILED,
        http_status: int = 400,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        """Make the next deployment fail, without calling on_deploy.

        stage "operation" (default): POST /services is accepted (202); the
            operation reports Running once, then "Failed" with this error, and
            the service ends in ``service_state`` with it in ``error``. Use
            service_state=UNHEALTHY with LIVENESS_502 for a crashing container.
        stage "create": POST /services answers ``http_status`` with the error;
            Model.deploy raises WebserviceException("Received bad response ...").
        stage "validate": POST /services/validate rejects it; Model.deploy
            raises WebserviceException(message) and never POSTs /services.
        """
        if stage not in ("operation", "create", "validate"):
            raise ValueError(f"unknown stage {stage!r}")
        with self._lock:
            self._failures.append(InjectedFailure(code, message, stage, service_state, http_status, details or []))

    def set_unhealthy(
        self,
        name: str,
        message: str = LIVENESS_502,
        code: str = "KubernetesDeploymentFailed",
        detail_code: str = "LivenessProbeFailed",
    ) -> None:
        """Turn a deployed service "Unhealthy" (e.g. its liveness probe started failing with 502)."""
        with self._lock:
            svc = self._service(name)
            svc.state = UNHEALTHY
            svc.error = _error(
                code, "Kubernetes Deployment failed", details=[{"code": detail_code, "message": message}]
            )
            svc.updated = _now()
            self._log(svc, f"Readiness/liveness: {message}")

    def turn_unhealthy(self, name: str, message: str = LIVENESS_502) -> None:
        """The same as :meth:`set_unhealthy`, under the name the fake v2 uses."""
        self.set_unhealthy(name, message)

    def set_healthy(self, name: str) -> None:
        with self._lock:
            svc = self._service(name)
            svc.state, svc.error, svc.updated = HEALTHY, None, _now()

    def keys(self, name: str) -> tuple[str, str]:
        """The service's (primary, secondary) keys."""
        svc = self._service(name)
        return svc.primary_key, svc.secondary_key

    def service(self, name: str) -> FakeService:
        return self._service(name)

    @property
    def services(self) -> dict[str, FakeService]:
        with self._lock:
            return dict(self._services)

    @property
    def models(self) -> dict[str, FakeModel]:
        """Registered models by id ("name:version")."""
        with self._lock:
            return dict(self._models)

    def append_log(self, name: str, line: str) -> None:
        """Add a line to what get_logs() returns for the service."""
        with self._lock:
            self._log(self._service(name), line)

    def join_deployments(self, timeout: float = 30) -> None:
        """Wait until every background deployment has finished (on_deploy returned or raised)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def workspace_path(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/{_ML}/{self.workspace_name}"

    # ------------------------------------------------------------------ WSGI plumbing

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Response]]]:
        ws = r"/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"  # noqa: E501
        mms = "/modelmanagement/v1.0" + ws
        art = "/artifact/v2.0" + ws + "/artifacts"
        table = [
            ("GET", "/arm/subscriptions", self._arm_subscriptions),
            ("GET", "/arm/subscriptions/(?P<sub>[^/]+)", self._arm_subscription),
            ("GET", "/arm" + ws, self._arm_workspace),
            ("GET", "/arm" + ws + "/computes/(?P<compute>[^/]+)", self._compute),
            ("GET", "/rp/workspaces" + ws + "/computes/(?P<compute>[^/]+)", self._compute),
            ("GET", "/discovery", self._discovery),
            ("POST", art + "/batch/metadata/(?P<origin>[^/]+)/(?P<container>[^/]+)", self._artifacts_create),
            (
                "GET",
                art + "/prefix/contentinfo/(?P<origin>[^/]+)/(?P<container>[^/]+)/(?P<path>.+)",
                self._artifacts_prefix,
            ),
            ("PUT", "/blob/(?P<account>[^/]+)/(?P<container>[^/]+)/(?P<blob>.+)", self._blob_put),
            ("HEAD", "/blob/(?P<account>[^/]+)/(?P<container>[^/]+)/(?P<blob>.+)", self._blob_head),
            ("GET", "/blob/(?P<account>[^/]+)/(?P<container>[^/]+)/(?P<blob>.+)", self._blob_get),
            ("POST", mms + "/assets", self._asset_create),
            ("GET", mms + "/assets/(?P<id>[^/]+)", self._asset_get),
            ("POST", mms + "/models", self._model_register),
            ("GET", mms + "/models", self._model_list),
            ("GET", mms + "/models/(?P<id>[^/]+)", self._model_get),
            ("DELETE", mms + "/models/(?P<id>[^/]+)", self._model_delete),
            ("POST", mms + "/services/validate", self._service_validate),
            ("POST", mms + "/services/validate/name/(?P<name>[^/]+)", self._service_validate_other),
            ("POST", mms + "/services/validate/resource", self._service_validate_other),
            ("POST", mms + "/services", self._service_create),
            ("GET", mms + "/services", self._service_list),
            ("GET", mms + "/services/(?P<name>[^/]+)", self._service_get),
            ("DELETE", mms + "/services/(?P<name>[^/]+)", self._service_delete),
            ("POST", mms + "/services/(?P<name>[^/]+)/listkeys", self._service_keys),
            ("POST", mms + "/services/(?P<name>[^/]+)/regenerateKeys", self._service_regen_keys),
            ("POST", mms + "/services/(?P<name>[^/]+)/token", self._service_token),
            ("GET", mms + "/services/(?P<name>[^/]+)/logs", self._service_logs),
            ("GET", mms + "/operations/(?P<op>[^/]+)", self._operation_get),
            ("GET", "/environment/v1.0" + ws + "/environments/(?P<env>[^/]+)", self._environment_get),
            ("GET", "/environment/v1.0" + ws + "/environments/(?P<env>[^/]+)/versions/[^/]+", self._environment_get),
        ]
        return [(method, re.compile(pattern + "$"), handler) for method, pattern, handler in table]

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        path = unquote(request.path)
        with self._lock:
            self.requests.append((request.method, path))
        early = self._fault_response(request, path)
        if early is not None:
            return early(environ, start_response)
        for method, pattern, handler in self._routes:
            match = pattern.match(path) if method == request.method else None
            if match:
                try:
                    self._check_scope(request, path, match.groupdict())
                    response = handler(request, **match.groupdict())
                except _Reply as reply:
                    response = self._json({"error": _error(reply.code, str(reply), reply.status)}, reply.status)
                except Exception as exc:  # a bug in the fake: say so loudly, as a 500 the SDK will print
                    log.exception("fake-azureml: %s %s failed", request.method, path)
                    response = self._json({"error": _error("FakeInternalError", repr(exc), 500)}, 500)
                return response(environ, start_response)
        with self._lock:
            self.unhandled.append((request.method, path))
        log.warning("fake-azureml: no route for %s %s", request.method, path)
        body = {"error": _error("NotImplementedInFake", f"No route for {request.method} {path}", 404)}
        return self._json(body, 404)(environ, start_response)

    def _fault_response(self, request: Request, path: str) -> Response | None:
        """Throttling, injected errors, expired tokens and slow uploads, before any route runs."""
        rule = self._take_rule(("throttle", "fail"), request.method, path)
        if rule is not None:
            self._fired(rule.fault, request.method, path, status=rule.status)
            if rule.fault == "throttle":
                message = throttle_message(request.method, self.subscription_id, rule.retry_after)
                body = {"error": _error("SubscriptionRequestsThrottled", message, 429)}
                return self._json(body, 429, headers=throttle_headers(request.method, rule.retry_after))
            return self._json({"error": _error(rule.code, rule.message, rule.status)}, rule.status)
        if path.startswith("/blob/"):
            if request.method == "PUT":
                self._delay_upload(request.method, path)
            return None
        authorization = request.headers.get("Authorization", "")
        if path != "/discovery" and authorization.startswith("Bearer "):
            problem = self._token_expiry_problem(authorization)
            if problem is not None:
                self._fired("expired_token", request.method, path, code=problem[0])
                body = {"error": _error(problem[0], problem[1], 401)}
                return self._json(body, 401, headers=expired_token_headers(self.tenant_id, problem[0]))
        return None

    def _check_scope(self, request: Request, path: str, params: dict[str, str]) -> None:
        """Blob requests need a SAS signature; everything else but discovery a bearer token and our workspace."""
        if path.startswith("/blob/"):
            if "sig" not in request.args:
                raise _Reply(403, "AuthenticationFailed", "Server failed to authenticate the request (no SAS).")
            return
        if path != "/discovery" and not request.headers.get("Authorization", "").startswith("Bearer "):
            raise _Reply(401, "AuthenticationFailed", "Missing bearer token.")
        if "sub" in params and params["sub"] != self.subscription_id:
            raise _Reply(404, "SubscriptionNotFound", f"The subscription '{params['sub']}' could not be found.")
        if "ws" in params and (params["rg"].lower(), params["ws"].lower()) != (
            self.resource_group.lower(),
            self.workspace_name.lower(),
        ):
            raise _Reply(
                404,
                "ResourceNotFound",
                f"The Resource '{_ML}/{params['ws']}' under resource group '{params['rg']}' was not found.",
            )

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def _log(self, svc: FakeService, line: str) -> None:
        svc.logs.append(f"{_iso(_now())} {line}")

    def _service(self, name: str) -> FakeService:
        with self._lock:
            try:
                return self._services[name]
            except KeyError:
                raise KeyError(f"no service named {name!r}") from None

    # ------------------------------------------------------------------ ARM, discovery, compute

    def _arm_subscriptions(self, request: Request, **_: str) -> Response:
        return self._json({"value": [self._subscription_json()]})

    def _arm_subscription(self, request: Request, **_: str) -> Response:
        return self._json(self._subscription_json())

    def _subscription_json(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.subscription_id}",
            "subscriptionId": self.subscription_id,
            "tenantId": self.tenant_id,
            "displayName": "Fake subscription",
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "Fake",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }

    def _arm_workspace(self, request: Request, **_: str) -> Response:
        rg_path = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers"
        return self._json(
            {
                "id": self.workspace_path(),
                "name": self.workspace_name,
                "type": "Microsoft.MachineLearningServices/workspaces",
                "location": self.location,
                "tags": {},
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()), "tenantId": self.tenant_id},
                "sku": {"name": "Basic", "tier": "Basic"},
                "properties": {
                    "friendlyName": self.workspace_name,
                    "description": "",
                    "workspaceId": self.workspace_id,
                    "tenantId": self.tenant_id,
                    "creationTime": _iso(_now()),
                    "provisioningState": "Succeeded",
                    # Every later SDK call is addressed from this answer: keep it on the fake.
                    "discoveryUrl": f"{self.base_url}/discovery",
                    "storageAccount": f"{rg_path}/Microsoft.Storage/storageAccounts/{self.storage_account}",
                    "keyVault": f"{rg_path}/Microsoft.KeyVault/vaults/fakeamlvault",
                    "applicationInsights": f"{rg_path}/Microsoft.Insights/components/fakeamlinsights",
                    "containerRegistry": f"{rg_path}/Microsoft.ContainerRegistry/registries/fakeamlregistry",
                    "hbiWorkspace": False,
                    "allowPublicAccessWhenBehindVnet": False,
                    "publicNetworkAccess": "Enabled",
                    "v1LegacyMode": True,
                    "privateLinkCount": 0,
                },
            }
        )

    def _discovery(self, request: Request, **_: str) -> Response:
        keys = ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling")
        return self._json({key: self.base_url for key in (*keys, "modelmanagement", "pipelines", "studio")})

    def _compute(self, request: Request, compute: str, **_: str) -> Response:
        if compute not in self.computes:
            raise _Reply(404, "NotFound", f"Compute {compute} not found in workspace {self.workspace_name}.")
        rg_path = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers"
        stamp = _iso(_now())
        return self._json(
            {
                "id": f"{self.workspace_path()}/computes/{compute}",
                "name": compute,
                "type": "Microsoft.MachineLearningServices/workspaces/computes",
                "location": self.location,
                "tags": None,
                "properties": {
                    "computeType": "AKS",
                    "computeLocation": self.location,
                    "description": None,
                    "createdOn": stamp,
                    "modifiedOn": stamp,
                    "resourceId": f"{rg_path}/Microsoft.ContainerService/managedClusters/{compute}",
                    "provisioningErrors": None,
                    "provisioningState": "Succeeded",
                    "isAttachedCompute": True,
                    "disableLocalAuth": False,
                    "properties": {
                        "agentVmSize": "Standard_NC6s_v3",
                        "agentCount": 1,
                        "clusterPurpose": "FastProd",
                        "clusterFqdn": f"{compute}-dns.hcp.{self.location}.azmk8s.io",
                        "loadBalancerType": "PublicIp",
                        "loadBalancerSubnet": None,
                        "systemServices": [
                            {"systemServiceType": "ScoringFrontEnd", "publicIpAddress": "127.0.0.1", "version": "fake"}
                        ],
                        "sslConfiguration": {"status": "Disabled"},
                    },
                },
            }
        )

    # ------------------------------------------------------------------ artifacts and blob storage

    def _sas_uri(self, blob: str) -> str:
        # The SDK keeps only account, container, blob and SAS from this URL and
        # rebuilds https://{account}.blob.core.windows.net itself: the routing
        # helper must catch that host.
        return f"https://{self.storage_account}.blob.core.windows.net/azureml/{blob}?sv=2019-07-07&sr=b&sp=rcw&sig=fake"

    def _artifacts_create(self, request: Request, origin: str, container: str, **_: str) -> Response:
        body = request.get_json(force=True)
        artifacts, content = {}, {}
        with self._lock:
            for entry in body.get("paths") or []:
                path = entry["path"]
                artifact_id = f"{origin}/{container}/{path}"
                dto = {
                    "artifactId": artifact_id,
                    "origin": origin,
                    "container": container,
                    "path": path,
                    "etag": None,
                    "createdTime": _iso(_now()),
                    "dataPath": None,
                }
                self._artifacts[artifact_id] = dto
                artifacts[path] = dto
                content[path] = {
                    "contentUri": self._sas_uri(f"{origin}/{container}/{path}"),
                    "origin": origin,
                    "container": container,
                    "path": path,
                }
        return self._json({"artifacts": artifacts, "artifactContentInformation": content, "errors": {}})

    def _artifacts_prefix(self, request: Request, origin: str, container: str, path: str, **_: str) -> Response:
        prefix = f"{origin}/{container}/{path}"
        with self._lock:
            found = [dto for key, dto in self._artifacts.items() if key == prefix or key.startswith(prefix + "/")]
        value = [
            {
                "contentUri": self._sas_uri(dto["artifactId"]),
                "origin": origin,
                "container": container,
                "path": dto["path"],
            }
            for dto in found
        ]
        return self._json({"value": value, "continuationToken": None, "nextLink": None})

    def _blob_headers(self, data: bytes) -> dict[str, str]:
        return {
            "ETag": f'"0x{md5(data).hexdigest()[:16].upper()}"',  # noqa: S324 - an ETag, not security
            "Last-Modified": format_datetime(_now(), usegmt=True),
            "x-ms-version": "2019-07-07",
            "x-ms-request-server-encrypted": "true",
        }

    def _blob_put(self, request: Request, account: str, container: str, blob: str, **_: str) -> Response:
        key = (account, container, blob)
        comp = request.args.get("comp")
        data = request.get_data()
        with self._lock:
            if comp == "block":  # large uploads arrive as blocks, then a block list
                self._blocks.setdefault(key, {})[request.args["blockid"]] = data
                return Response(status=201, headers={"x-ms-version": "2019-07-07"})
            if comp == "blocklist":
                blocks = self._blocks.pop(key, {})
                ids = [element.text or "" for element in ET.fromstring(data)]  # noqa: S314 - our own SDK's XML
                self._blobs[key] = b"".join(blocks[block_id] for block_id in ids)
                return Response(status=201, headers=self._blob_headers(self._blobs[key]))
            if comp in ("metadata", "properties"):
                if key not in self._blobs:
                    return self._blob_missing()
                return Response(status=200, headers=self._blob_headers(self._blobs[key]))
            self._blobs[key] = data
        headers = self._blob_headers(data)
        headers["Content-MD5"] = base64.b64encode(md5(data).digest()).decode()  # noqa: S324 - Azure's checksum
        return Response(status=201, headers=headers)

    @staticmethod
    def _blob_missing() -> Response:
        return Response(status=404, headers={"x-ms-error-code": "BlobNotFound"})

    def _blob_head(self, request: Request, account: str, container: str, blob: str, **_: str) -> Response:
        with self._lock:
            data = self._blobs.get((account, container, blob))
        if data is None:
            return self._blob_missing()
        headers = self._blob_headers(data)
        headers.update({"Content-Length": str(len(data)), "x-ms-blob-type": "BlockBlob"})
        response = Response(status=200, headers=headers, content_type="application/octet-stream")
        response.automatically_set_content_length = False
        return response

    def _blob_get(self, request: Request, account: str, container: str, blob: str, **_: str) -> Response:
        with self._lock:
            data = self._blobs.get((account, container, blob))
        if data is None:
            return self._blob_missing()
        headers = self._blob_headers(data)
        headers["x-ms-blob-type"] = "BlockBlob"
        ranged = re.match(r"bytes=(\d+)-(\d*)", request.headers.get("x-ms-range") or request.headers.get("Range") or "")
        if not ranged:
            return Response(data, status=200, headers=headers, content_type="application/octet-stream")
        start = int(ranged.group(1))
        end = min(int(ranged.group(2) or len(data) - 1), len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(data[start : end + 1], status=206, headers=headers, content_type="application/octet-stream")

    def _artifact_bytes(self, artifact_id: str) -> bytes:
        try:
            return self._blobs[(self.storage_account, "azureml", artifact_id)]
        except KeyError:
            raise FileNotFoundError(f"artifact {artifact_id} was created but never uploaded") from None

    # ------------------------------------------------------------------ assets and models

    def _asset_create(self, request: Request, **_: str) -> Response:
        body = request.get_json(force=True)
        asset = {
            "id": uuid.uuid4().hex,
            "name": body.get("name"),
            "type": body.get("type"),
            "description": body.get("description"),
            "artifacts": body.get("artifacts") or [],
            "kvTags": body.get("kvTags") or {},
            "properties": body.get("properties") or {},
            "runid": body.get("runid"),
            "meta": body.get("meta"),
            "createdTime": _iso(_now()),
        }
        with self._lock:
            self._assets[asset["id"]] = asset
        return self._json(asset)

    def _asset_get(self, request: Request, id: str, **_: str) -> Response:
        with self._lock:
            asset = self._assets.get(id)
        if asset is None:
            raise _Reply(404, "NotFound", f"Asset {id} not found.")
        return self._json(asset)

    def _model_json(self, model: FakeModel) -> dict[str, Any]:
        return {
            "id": model.id,
            "name": model.name,
            "version": model.version,
            "framework": model.framework,
            "frameworkVersion": model.framework_version,
            "description": model.description,
            "kvTags": model.tags,
            "properties": model.properties,
            "url": f"aml://asset/{model.asset_id}",
            "mimeType": "application/octet-stream",
            "unpack": model.unpack,
            "createdTime": _iso(model.created),
            "modifiedTime": _iso(model.created),
            "experimentName": None,
            "runId": None,
            "parentModelId": None,
            "derivedModelIds": [],
            "datasets": [],
            "sampleInputData": None,
            "sampleOutputData": None,
            "resourceRequirements": None,
            "createdBy": self._created_by(),
        }

    def _created_by(self) -> dict[str, Any]:
        return {
            "userObjectId": "00000000-0000-0000-0000-00000000b001",
            "userTenantId": self.tenant_id,
            "userName": "tests",
        }

    def _model_register(self, request: Request, **_: str) -> Response:
        body = request.get_json(force=True)
        url = body.get("url") or ""
        asset_id = url.removeprefix("aml://asset/")
        with self._lock:
            if asset_id not in self._assets:
                raise _Reply(400, "BadRequest", f"Model url {url!r} names no asset.")
            name = body["name"]
            version = 1 + max((m.version for m in self._models.values() if m.name == name), default=0)
            model = FakeModel(
                name=name,
                version=version,
                asset_id=asset_id,
                framework=body.get("framework"),
                framework_version=body.get("frameworkVersion"),
                description=body.get("description"),
                tags=body.get("kvTags") or {},
                properties=body.get("properties") or {},
                unpack=bool(body.get("unpack")),
                created=_now(),
            )
            self._models[model.id] = model
        return self._json(self._model_json(model))

    def _model_list(self, request: Request, **_: str) -> Response:
        name = request.args.get("name")
        # MMS filters on the server: "key=value,key2" (every one must match).
        wanted = [tag.partition("=") for tag in (request.args.get("tags") or "").split(",") if tag]
        with self._lock:
            found = [
                m
                for m in self._models.values()
                if (name is None or m.name == name)
                and all(key in m.tags and (not sep or m.tags[key] == value) for key, sep, value in wanted)
            ]
        found.sort(key=lambda m: m.created, reverse=True)  # newest first, as MMS orders them
        count = request.args.get("count", type=int)
        return self._json({"value": [self._model_json(m) for m in found[:count]]})

    def _model_get(self, request: Request, id: str, **_: str) -> Response:
        with self._lock:
            model = self._models.get(id)
        if model is None:
            raise _Reply(404, "ModelNotFound", f"Model with id {id} not found.")
        return self._json(self._model_json(model))

    def _model_delete(self, request: Request, id: str, **_: str) -> Response:
        with self._lock:
            self._models.pop(id, None)
        return Response(status=200)

    # ------------------------------------------------------------------ services

    def _take_failure(self, stage: str) -> InjectedFailure | None:
        with self._lock:
            if self._failures and self._failures[0].stage == stage:
                return self._failures.popleft()
        return None

    def _service_validate(self, request: Request, **_: str) -> Response:
        body = request.get_json(force=True) or {}
        if body.get("type") == "Create":
            failure = self._take_failure("validate")
            if failure:
                # The SDK raises WebserviceException(error.message) from this 200 answer.
                return self._json({"error": _error(failure.code, failure.message, failure.http_status)})
        return self._json({})

    def _service_validate_other(self, request: Request, **_: str) -> Response:
        return self._json({})

    def _service_create(self, request: Request, **_: str) -> Response:
        body = request.get_json(force=True)
        with self._lock:
            self.create_calls += 1
        failure = self._take_failure("create")
        if failure:
            raise _Reply(failure.http_status, failure.code, failure.message)
        name = body.get("name")
        if body.get("computeType") != "AKS":
            raise _Reply(400, "BadRequest", f"This fake serves AKS web services only, not {body.get('computeType')!r}.")
        if body.get("computeName") not in self.computes:
            raise _Reply(400, "BadRequest", f"Compute {body.get('computeName')!r} not found in the workspace.")
        with self._lock:
            unknown = [
                m for m in (body.get("environmentImageRequest") or {}).get("modelIds", []) if m not in self._models
            ]
            if unknown:
                raise _Reply(400, "BadRequest", f"Model(s) {unknown} not found.")
            previous = self._services.get(name)
            if previous is not None and not body.get("overwrite"):
                raise _Reply(409, "Conflict", f"Service {name} with the same name already exists.")
            failure = self._take_failure("operation")
            provisioning = self._take_provisioning_failure() if failure is None else None
            # An overwrite updates the same service: its keys survive unless the payload sets them.
            keys = {"primaryKey": secrets.token_hex(16), "secondaryKey": secrets.token_hex(16)}
            if previous is not None:
                keys = {"primaryKey": previous.primary_key, "secondaryKey": previous.secondary_key}
            keys.update({k: v for k, v in (body.get("keys") or {}).items() if v})
            now = _now()
            operation = FakeOperation(id=str(uuid.uuid4()), service_name=name, created=now)
            if self.long_operation_s > 0:
                operation.hold_until = time.monotonic() + self.long_operation_s
                operation.retry_after = self.long_operation_retry_after
            svc = FakeService(
                name=name,
                request=copy.deepcopy(body),
                primary_key=keys["primaryKey"],
                secondary_key=keys["secondaryKey"],
                operation_id=operation.id,
                created=previous.created if previous else now,
                updated=now,
                reads_left=self.transitioning_reads,
            )
            self._log(svc, f"fake-azureml: {'updating' if previous else 'creating'} service {name}")
            self._services[name] = svc
            self._operations[operation.id] = operation
            thread = threading.Thread(
                target=self._deploy,
                args=(svc, operation, previous, failure, provisioning),
                name=f"fake-deploy-{name}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()
        location = f"{request.host_url.rstrip('/')}{request.path.rsplit('/services', 1)[0]}/operations/{operation.id}"
        return self._json({}, 202, headers={"Operation-Location": location})

    def _deploy(
        self,
        svc: FakeService,
        operation: FakeOperation,
        previous: FakeService | None,
        failure: InjectedFailure | None,
        provisioning: ProvisioningFailure | None = None,
    ) -> None:
        """Background half of a create: tear down what it replaces, then on_deploy (or the injected failure)."""
        try:
            if previous is not None:
                previous.settled.wait()
                if previous.deployed:
                    self._call_on_delete(previous)
            if operation.hold_until:
                # long_operations: Transitioning (and the operation Running) at least this long.
                time.sleep(max(0.0, operation.hold_until - time.monotonic()))
            if provisioning is not None:
                self._fail_provisioning(svc, operation, provisioning)
                return
            if failure is not None:
                error = _error(failure.code, failure.message, failure.http_status, failure.details)
                self._finish(svc, operation, failure.service_state, error)
                return
            self._materialise(svc)
            base = self.on_deploy(svc.name, svc.model_dir)
            with self._lock:
                svc.deployed = True  # from here on, on_delete owes on_deploy a teardown
                svc.scoring_uri = base.rstrip("/") + self.scoring_path
            self._finish(svc, operation, HEALTHY, None)
        except Exception as exc:
            log.info("fake-azureml: deployment of %s failed: %r", svc.name, exc)
            error = _error("DeploymentFailed", f"{type(exc).__name__}: {exc}")
            self._finish(svc, operation, FAILED, error)

    def _fail_provisioning(self, svc: FakeService, operation: FakeOperation, failure: ProvisioningFailure) -> None:
        """Run "a while" through the stages before ``failure.stage``, then end Failed with AKS's error for it."""
        with self._lock:
            self._log(svc, f"fake-azureml: pulling image for service {svc.name}")
        time.sleep(failure.after_seconds)
        code, message, details = aks_provisioning_error(failure.stage)
        if failure.code or failure.message:
            first = details[0]
            details = [{"code": failure.code or first["code"], "message": failure.message or first["message"]}]
        with self._lock:
            for detail in details:
                self._log(svc, f"{detail['code']}: {detail['message']}")
        self._fired("provisioning", "POST", svc.name, stage=failure.stage, code=details[0]["code"])
        self._finish(svc, operation, FAILED, _error(code, message, 400, details))

    def _finish(self, svc: FakeService, operation: FakeOperation, state: str, error: dict[str, Any] | None) -> None:
        with self._lock:
            svc.state, svc.error, svc.updated = state, error, _now()
            operation.state = "Succeeded" if state == HEALTHY else "Failed"
            operation.error, operation.ended = error, _now()
            self._log(
                svc, f"fake-azureml: deployment {operation.state.lower()}" + (f": {error['message']}" if error else "")
            )
            svc.settled.set()

    def _materialise(self, svc: FakeService) -> None:
        """Lay the service's model files (and source directory) out on disk.

        Like AZUREML_MODEL_DIR on Azure: with one model, ``model_dir`` holds the
        files under the relative paths they were registered with (for
        ``Model.register(model_path="models")`` that is ``models/triton/<name>/...``,
        so the Triton repository is ``model_dir / "models" / "triton"``); with
        several, ``model_dir`` holds ``<model name>/<version>/<those paths>``.
        An InferenceConfig's source_directory is unpacked beside it, at
        ``svc.source_dir``.
        """
        assert self._root is not None, "start() the fake first"
        with self._lock:
            self._deploy_seq += 1
            deploy_dir = self._root / "deployments" / f"{svc.name}-{self._deploy_seq}"
            models = [self._models[model_id] for model_id in svc.model_ids]
            assets = [self._assets[model.asset_id] for model in models]
            files: list[tuple[Path, bytes]] = []
            for model, asset in zip(models, assets, strict=True):
                model_root = deploy_dir / "azureml-models" / model.name / str(model.version)
                for prefix in (artifact["prefix"] for artifact in asset["artifacts"] if artifact.get("prefix")):
                    for artifact_id, dto in self._artifacts.items():
                        if artifact_id == prefix or artifact_id.startswith(prefix + "/"):
                            files.append((model_root / _safe_relative(dto["path"]), self._artifact_bytes(artifact_id)))
            sources = [
                self._artifact_bytes(asset["url"].removeprefix("aml://artifact/"))
                for asset in (svc.request.get("environmentImageRequest") or {}).get("assets") or []
                if asset.get("unpack") and asset.get("url", "").startswith("aml://artifact/")
            ]
        for target, data in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        models_root = deploy_dir / "azureml-models"
        models_root.mkdir(parents=True, exist_ok=True)
        svc.deploy_dir = deploy_dir
        svc.model_dir = models_root / models[0].name / str(models[0].version) if len(models) == 1 else models_root
        for tarball in sources:
            with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
                archive.extractall(deploy_dir / "source", filter="data")
            source_name = svc.environment_variables.get("AZUREML_SOURCE_DIRECTORY")
            svc.source_dir = deploy_dir / "source" / source_name if source_name else deploy_dir / "source"

    def _call_on_delete(self, svc: FakeService) -> None:
        svc.deployed = False
        self.on_delete(svc.name)

    def _service_json(self, svc: FakeService, state: str) -> dict[str, Any]:
        request = svc.request
        merged = _merge(copy.deepcopy(_AKS_DEFAULTS), {key: request.get(key) for key in _AKS_DEFAULTS})
        resources = merged["containerResourceRequirements"]
        resources["cpuLimit"] = resources["cpuLimit"] or resources["cpu"]
        resources["memoryInGBLimit"] = resources["memoryInGBLimit"] or resources["memoryInGB"]
        merged["namespace"] = merged["namespace"] or f"azureml-{self.workspace_name}"
        with self._lock:
            models = [self._model_json(self._models[m]) for m in svc.model_ids if m in self._models]
        replicas = merged["numReplicas"] or merged["autoScaler"]["minReplicas"]
        body: dict[str, Any] = {
            "id": svc.name,
            "name": svc.name,
            "description": request.get("description"),
            "kvTags": request.get("kvTags") or {},
            "properties": {"hasInferenceSchema": "False", "hasHttps": "False", **(request.get("properties") or {})},
            "computeType": "AKS",
            "computeName": request.get("computeName"),
            "state": state,
            "createdTime": _iso(svc.created),
            "updatedTime": _iso(svc.updated),
            "createdBy": self._created_by(),
            "scoringUri": svc.scoring_uri if state != TRANSITIONING else None,
            "models": models,
            "environmentImageRequest": request.get("environmentImageRequest"),
            "deploymentStatus": {
                "desiredReplicas": replicas,
                "updatedReplicas": replicas if state == HEALTHY else 0,
                "availableReplicas": replicas if state == HEALTHY else 0,
                "error": None,
            },
            "isDefault": None,
            "trafficPercentile": None,
            "type": None,
            **merged,
        }
        # Azure omits what a service lacks; the SDK chokes on imageDetails: null.
        if svc.error is not None and state != TRANSITIONING:
            body["error"] = svc.error
        return body

    def _visible_state(self, svc: FakeService, consume_read: bool) -> str:
        """Transitioning until the deployment settled and the extra Transitioning reads are used up."""
        with self._lock:
            transitioning = not svc.settled.is_set() or svc.reads_left > 0
            if consume_read:
                svc.reads_left = max(0, svc.reads_left - 1)
            return TRANSITIONING if transitioning else svc.state

    def _service_get(self, request: Request, name: str, **_: str) -> Response:
        with self._lock:
            svc = self._services.get(name)
        if svc is None:
            raise _Reply(404, "NotFound", f"Service {name} not found.")
        return self._json(self._service_json(svc, self._visible_state(svc, consume_read=True)))

    def _service_list(self, request: Request, **_: str) -> Response:
        with self._lock:
            found = list(self._services.values())
        model_name, compute_type = request.args.get("modelName"), request.args.get("computeType")
        values = []
        for svc in found:
            if compute_type and compute_type.upper() != "AKS":
                continue
            if model_name and not any(m.split(":")[0] == model_name for m in svc.model_ids):
                continue
            values.append(self._service_json(svc, self._visible_state(svc, consume_read=False)))
        return self._json({"value": values})

    def _service_delete(self, request: Request, name: str, **_: str) -> Response:
        with self._lock:
            svc = self._services.get(name)
        if svc is None:
            return Response(status=204)  # the SDK prints "No service with name ... found to delete."
        svc.settled.wait(timeout=60)  # never tear down under a running on_deploy
        with self._lock:
            self._services.pop(name, None)
        if svc.deployed:
            self._call_on_delete(svc)
        return Response(status=200)  # 200, not 202: the SDK would poll a 202 with 5 s sleeps

    def _service_keys(self, request: Request, name: str, **_: str) -> Response:
        svc = self._existing(name)
        return self._json({"primaryKey": svc.primary_key, "secondaryKey": svc.secondary_key})

    def _service_regen_keys(self, request: Request, name: str, **_: str) -> Response:
        svc = self._existing(name)
        body = request.get_json(force=True) or {}
        value = body.get("keyValue") or secrets.token_hex(16)
        with self._lock:
            if body.get("keyType") == "Secondary":
                svc.secondary_key = value
            else:
                svc.primary_key = value
            operation = FakeOperation(id=str(uuid.uuid4()), service_name=name, created=_now(), kind="RegenerateKeys")
            operation.state, operation.ended, operation.polls = "Succeeded", _now(), self.running_polls
            self._operations[operation.id] = operation
        location = f"{request.host_url.rstrip('/')}{request.path.split('/services/')[0]}/operations/{operation.id}"
        return self._json({}, 202, headers={"Operation-Location": location})

    def _service_token(self, request: Request, name: str, **_: str) -> Response:
        self._existing(name)
        now = int(time.time())
        return self._json(
            {
                "accessToken": secrets.token_urlsafe(32),
                "tokenType": "Bearer",
                "refreshAfter": now + 600,
                "expiryOn": now + 3600,
            }
        )

    def _service_logs(self, request: Request, name: str, **_: str) -> Response:
        svc = self._existing(name)
        tail = request.args.get("tail", default=5000, type=int)
        with self._lock:
            lines = svc.logs[-tail:] if tail > 0 else []
        return self._json({"content": "\n".join(lines) + "\n"})

    def _existing(self, name: str) -> FakeService:
        with self._lock:
            svc = self._services.get(name)
        if svc is None:
            raise _Reply(404, "NotFound", f"Service {name} not found.")
        return svc

    def _operation_get(self, request: Request, op: str, **_: str) -> Response:
        with self._lock:
            operation = self._operations.get(op)
            if operation is None:
                raise _Reply(404, "NotFound", f"Operation {op} not found.")
            # "Running" for the first running_polls polls, like a real deployment, then the outcome.
            state = operation.state if operation.polls >= self.running_polls else "Running"
            if operation.hold_until and time.monotonic() < operation.hold_until:
                state = "Running"
            operation.polls += 1
        headers = {"Retry-After": str(operation.retry_after)} if operation.retry_after is not None else None
        body: dict[str, Any] = {
            "id": operation.id,
            "operationType": operation.kind,
            "state": state,
            "createdTime": _iso(operation.created),
            "resourceLocation": f"/api/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
            f"/services/{operation.service_name}",
            "operationDetails": {"subOperationType": "DeployService"},
        }
        if state not in ("Running",) and operation.ended is not None:
            body["endTime"] = _iso(operation.ended)
            if operation.error is not None:
                body["error"] = operation.error
        return self._json(body, headers=headers)

    # ------------------------------------------------------------------ environments

    def _environment_get(self, request: Request, env: str, **_: str) -> Response:
        if env != _TRITON_ENVIRONMENT["name"]:
            raise _Reply(404, "NotFound", f"Environment {env} not found.")
        return self._json(_TRITON_ENVIRONMENT)


def aks_provisioning_error(stage: str) -> tuple[str, str, list[dict[str, str]]]:
    """(code, message, details) of an AKS web service that failed at ``stage``.

    The outer code and message are the ones this fake's liveness failure has
    always used (KubernetesDeploymentFailed, "Kubernetes Deployment failed");
    the detail codes are Kubernetes' own pod reasons, which the v1 guide
    ("Troubleshooting remote model deployment", MicrosoftDocs/azure-ai-docs,
    articles/machine-learning/v1/how-to-troubleshoot-deployment.md) tells
    users to expect: CrashLoopBackOff for an init() that fails (a model it
    cannot find, for one), image pulls from the workspace registry, and
    liveness probes answered 502 by a crashed scoring server.
    """
    if stage == "image_pull":
        details = [
            {
                "code": "ImagePullBackOff",
                "message": "Back-off pulling image from the workspace container registry: "
                "the cluster could not pull the service's image.",
            }
        ]
    elif stage == "model_download":
        details = [
            {
                "code": "CrashLoopBackOff",
                "message": "Your container application crashed: init() could not find the model "
                "(Model.get_model_path: model not found in the mounted workspace blob store).",
            }
        ]
    elif stage == "liveness_probe":
        details = [{"code": "LivenessProbeFailed", "message": LIVENESS_502}]
    else:
        raise ValueError(f"unknown stage {stage!r}")
    return "KubernetesDeploymentFailed", "Kubernetes Deployment failed", details


def _safe_relative(path: str) -> Path:
    """An artifact path as a relative filesystem path, refusing anything that climbs out."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe artifact path {path!r}")
    return Path(*parts)
