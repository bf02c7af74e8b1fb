"""What every kind of target shares: the adapter interface, the values that
cross it, and the one error type the engine sees."""

import contextlib
import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class TargetError(Exception):
    """A target refused or failed. `permanent` errors are not retried;
    `retry_after` is how long the target asked us to wait (seconds), if it said."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class StillInProgress(Exception):
    """The target accepted the change and is still carrying it out: the
    operation is looked at again in `check_in` seconds (not a failure, and
    no new attempt at the target: the next one follows the same work by its
    idempotency tags)."""

    def __init__(self, message: str, *, check_in: int = 60):
        super().__init__(message)
        self.message = message
        self.check_in = check_in


class Capability(enum.StrEnum):
    """What a kind can do beyond deploy, status and delete. Pages and the API
    offer an action only where the target's kind has it."""

    TRAFFIC = "traffic", "a traffic split between deployments of one endpoint"
    ADOPT = "adopt", "adopting services deployed without the dashboard"
    METRICS = "metrics", "Triton's Prometheus /metrics"
    LOGS = "logs", "server logs"
    KEYS = "keys", "endpoint keys"
    RESTART = "restart", "restarting a server that died"
    ENTRY_SCRIPT = "entry_script", "entry-script (score.py) mode"

    def __new__(cls, value: str, meaning: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member


@dataclass(frozen=True)
class DeploySpec:
    deployment_id: int
    name: str
    repository_path: Path
    repository_digest: str
    spec_digest: str
    mode: str
    entry_script: str
    pip_packages: list[str]
    worker_count: int
    resources: dict
    auth_enabled: bool
    idempotency_key: str
    # The repository's line: where the kind keeps a model registry (Azure
    # ML), its revisions are registered under the line's name.
    line: str = ""
    # "name:version" recorded for this content in this target's registry, to
    # reuse without searching; "" when none is known.
    known_model: str = ""
    # False: a one-shot redeploy (the new deployment takes the traffic and the
    # previous one goes, where the kind does that). True: a candidate beside
    # the running deployments at 0% until traffic is shifted to it (rollouts).
    candidate: bool = False


@dataclass(frozen=True)
class DeploymentRef:
    """What an adapter needs to find a deployment at its target again."""

    id: int
    name: str
    # (model name, versions) the repository holds, for per-version probes.
    models: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # "triton" or "entry_script": what answers at the address (never guessed from its shape).
    mode: str = "triton"
    # Whether status() should probe Triton too; False where the health
    # poller probes this deployment's data plane already.
    probe: bool = True

    @classmethod
    def of(cls, deployment, *, probe: bool = True) -> "DeploymentRef":
        repository = deployment.repository
        models = tuple((m.name, tuple(m.served_versions)) for m in repository.models.all()) if repository else ()
        return cls(id=deployment.pk, name=deployment.name, models=models, mode=deployment.mode, probe=probe)


@dataclass(frozen=True)
class ModelRegistration:
    """A repository held as a model in a registry: an Azure ML workspace's `name:version`."""

    workspace: str
    asset_type: str
    name: str
    version: str


@dataclass(frozen=True)
class DeployResult:
    scoring_uri: str
    notes: list[str] = field(default_factory=list)
    # The model the deployment serves, where the kind registers one.
    registered: ModelRegistration | None = None


@dataclass
class ModelState:
    name: str
    version: str
    ready: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "ready": self.ready, "reason": self.reason}


@dataclass
class Observation:
    """What the target says now. `exists` False: nothing is running there."""

    exists: bool
    live: bool = False
    ready: bool = False
    models: list[ModelState] = field(default_factory=list)
    detail: str = ""
    # The spec the target runs, when it can tell: differs from the desired one = drift.
    spec_digest: str = ""
    # For targets that provision asynchronously (Azure): "transitioning",
    # "succeeded", "failed", or "unhealthy" (provisioned, but the target's own
    # probes fail); "" when the target has no such notion.
    provisioning: str = ""
    # Where clients call, when the target says (Azure assigns it while provisioning).
    scoring_uri: str = ""
    # Endpoints with several deployments (SDK v2): the traffic split by deployment name.
    traffic: dict[str, int] = field(default_factory=dict)
    # The key clients (and the health poller) must send, when the endpoint wants one.
    key: str = ""
    # The endpoint's other key (shown on its page; clients may use either).
    secondary_key: str = ""
    # Endpoints with several deployments: each one's own control-plane facts,
    # {name: {"provisioning", "spec_digest", "detail"}}.
    deployments: dict[str, dict] = field(default_factory=dict)


# progress("message") records a step; progress(None) only proves the worker
# is alive during a long wait, so the reconciler does not take it for dead.
Progress = Callable[[str | None], None]


@dataclass(frozen=True)
class ServiceListing:
    """A service found at the target (for adoption)."""

    name: str
    state: str
    scoring_uri: str
    models: list[str]
    # Deployed by this dashboard (its deployment exists already).
    managed_here: bool
    compute: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class TargetAdapter:
    """The complete interface. deploy, status, delete and test_connection are
    every kind's; each other method belongs to a capability (CAPABILITY_METHODS)
    and a kind that declares the capability overrides it (a test checks)."""

    def __init__(self, target):
        self.target = target

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        raise NotImplementedError

    def status(self, ref: DeploymentRef) -> Observation:
        raise NotImplementedError

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        raise NotImplementedError

    def test_connection(self) -> str:
        raise NotImplementedError

    def model_registry(self) -> tuple[str, str] | None:
        """(workspace, asset type) where this target registers models, or
        None where the kind has no model registry."""
        return None

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        raise NotImplementedError

    def keys(self, ref: DeploymentRef) -> list[str]:
        raise NotImplementedError

    def set_traffic(self, ref: DeploymentRef, traffic: dict[str, int], progress: Progress) -> None:
        raise NotImplementedError

    def regenerate_key(self, ref: DeploymentRef, which: str, progress: Progress) -> None:
        """which: "primary" or "secondary"; the other key keeps working meanwhile."""
        raise NotImplementedError

    def list_services(self) -> list[ServiceListing]:
        raise NotImplementedError

    def metrics_url(self, ref: DeploymentRef) -> str:
        raise NotImplementedError

    def retire(self, ref: DeploymentRef, name: str, progress: Progress) -> None:
        """Remove one deployment of the endpoint (it must have no traffic);
        nothing to do when it is gone already."""
        raise NotImplementedError

    def read_counters(self, ref: DeploymentRef, name: str):
        """One deployment's cumulative Triton counters now (rollouts.figures.Counters)."""
        raise NotImplementedError

    def window_figures(self, ref: DeploymentRef, name: str, start, end) -> dict | None:
        """What the kind reads for one deployment over [start, end] itself,
        rather than from Triton's counters: {"p95_ms", "p99_ms", "requests",
        "4xx", "5xx"} (Azure Monitor); None where it reads nothing so."""
        return None


# The adapter method behind each capability; calling one the kind lacks is
# refused at the boundary (registry.adapter_for), naming kind and capability.
CAPABILITY_METHODS = {
    "logs": Capability.LOGS,
    "keys": Capability.KEYS,
    "regenerate_key": Capability.KEYS,
    "set_traffic": Capability.TRAFFIC,
    "list_services": Capability.ADOPT,
    "metrics_url": Capability.METRICS,
    "retire": Capability.TRAFFIC,
    "read_counters": Capability.TRAFFIC,
}


def endpoint_deployment_name(spec_digest: str) -> str:
    """The name of the deployment that runs a spec behind its endpoint (an
    Azure deployment, or the local target's Triton deployment): one per spec."""
    return f"s{spec_digest[:10]}"


@contextlib.contextmanager
def doing(what: str):
    """Name the step an SDK call belongs to. The exception is not translated
    here (the registry's boundary does that once); it only carries the step,
    so the message says "registering the model: <the SDK's words>"."""
    try:
        yield
    except Exception as exc:
        if not hasattr(exc, "target_doing"):
            with contextlib.suppress(AttributeError):  # a few C exceptions take no attributes
                exc.target_doing = what
        raise
