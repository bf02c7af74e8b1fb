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


# progress("message") records a step; progress(None) only proves the worker
# is alive during a long wait, so the reconciler does not take it for dead.
Progress = Callable[[str | None], None]


class TargetAdapter(Protocol):
    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult: ...

    def status(self, deployment_id: int) -> Observation: ...

    def delete(self, deployment_id: int, progress: Progress) -> None: ...

    def logs(self, deployment_id: int, tail: int) -> list[str]: ...

    def test_connection(self) -> str: ...
