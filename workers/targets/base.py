"""The one small interface every kind of target implements."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class TargetError(Exception):
    """A target refused or failed. `permanent` errors are not retried."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


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


@dataclass(frozen=True)
class DeploymentRef:
    """What an adapter needs to find a deployment at its target again."""

    id: int
    name: str
    # (model name, versions) the repository holds, for per-version probes.
    models: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def of(cls, deployment) -> "DeploymentRef":
        repository = deployment.repository
        models = tuple((m.name, tuple(m.versions)) for m in repository.models.all()) if repository else ()
        return cls(id=deployment.pk, name=deployment.name, models=models)


@dataclass(frozen=True)
class DeployResult:
    scoring_uri: str
    notes: list[str] = field(default_factory=list)


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
    # "succeeded" or "failed" ("" when the target has no such notion).
    provisioning: str = ""
    # Where clients call, when the target says (Azure assigns it while provisioning).
    scoring_uri: str = ""
    # Endpoints with several deployments (SDK v2): the traffic split by deployment name.
    traffic: dict[str, int] = field(default_factory=dict)
    # The key clients (and the health poller) must send, when the endpoint wants one.
    key: str = ""


# progress("message") records a step; progress(None) only proves the worker
# is alive during a long wait, so the reconciler does not take it for dead.
Progress = Callable[[str | None], None]


class TargetAdapter(Protocol):
    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult: ...

    def status(self, ref: DeploymentRef) -> Observation: ...

    def delete(self, ref: DeploymentRef, progress: Progress) -> None: ...

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]: ...

    def test_connection(self) -> str: ...
