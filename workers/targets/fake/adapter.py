"""The fake's "cloud": a dict in this process, and counters of the calls it
received, so tests can say "exactly one create" without a network."""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from workers.targets.base import (
    DeploymentRef,
    DeployResult,
    DeploySpec,
    ModelState,
    Observation,
    Progress,
    TargetAdapter,
)


class FakeCloudError(Exception):
    """What the fake's "SDK" raises: an HTTP status and a message, like Azure's."""

    def __init__(self, status: int, message: str):
        super().__init__(f"({status}) {message}")
        self.status = status


@dataclass
class FakeService:
    spec_digest: str
    scoring_uri: str
    log: list[str] = field(default_factory=list)


_LOCK = threading.Lock()
# (target id, deployment name) -> what runs there.
SERVICES: dict[tuple[int, str], FakeService] = {}
# (target id, call) -> how many times it was made; failures consumed per target.
CALLS: Counter = Counter()
_FAILED: Counter = Counter()


def reset() -> None:
    with _LOCK:
        SERVICES.clear()
        CALLS.clear()
        _FAILED.clear()


class FakeTarget(TargetAdapter):
    def __init__(self, target):
        super().__init__(target)
        self.behaviour = target.settings.get("behaviour", "succeed")

    def _count(self, call: str) -> None:
        with _LOCK:
            CALLS[(self.target.pk, call)] += 1

    def _maybe_fail(self, doing: str) -> None:
        if self.behaviour == "fail_permanent":
            raise FakeCloudError(400, f"ValidationError: {doing} refused by the fake")
        if self.behaviour == "fail_transient":
            with _LOCK:
                failed = _FAILED[self.target.pk]
                if failed < self.target.settings.get("transient_failures", 1):
                    _FAILED[self.target.pk] += 1
                    raise FakeCloudError(503, f"ServiceUnavailable: {doing} (failure {failed + 1})")

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        self._maybe_fail("deploying")
        key = (self.target.pk, spec.name)
        existing = SERVICES.get(key)
        if existing is not None and existing.spec_digest == spec.spec_digest:
            progress("The fake already runs this spec; nothing created")
            return DeployResult(scoring_uri=existing.scoring_uri)
        if self.behaviour == "slow":
            deadline = time.monotonic() + self.target.settings.get("delay_seconds", 1)
            while time.monotonic() < deadline:
                progress(None)
                time.sleep(0.05)
        self._count("create")
        service = FakeService(spec.spec_digest, f"fake://{self.target.name}/{spec.name}")
        service.log.append(f"created with spec {spec.spec_digest[:12]}")
        with _LOCK:
            SERVICES[key] = service
        progress(f"Fake service {spec.name} created")
        return DeployResult(scoring_uri=service.scoring_uri)

    def status(self, ref: DeploymentRef) -> Observation:
        self._maybe_fail("reading the service")
        if self.behaviour == "status_crashes":
            raise RuntimeError("the fake's status() crashed")
        service = SERVICES.get((self.target.pk, ref.name))
        if service is None:
            return Observation(exists=False, detail=f"the fake has no service {ref.name}")
        healthy = self.behaviour != "unhealthy"
        models = [
            ModelState(name, str(version), healthy, "" if healthy else "UNAVAILABLE: switched off by the fake")
            for name, versions in ref.models
            for version in versions
        ]
        digest = "0" * 64 if self.behaviour == "drift" else service.spec_digest
        return Observation(
            exists=True, live=True, ready=healthy, models=models, spec_digest=digest, scoring_uri=service.scoring_uri
        )

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        self._maybe_fail("deleting")
        self._count("delete")
        with _LOCK:
            SERVICES.pop((self.target.pk, ref.name), None)
        progress(f"Fake service {ref.name} deleted")

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        service = SERVICES.get((self.target.pk, ref.name))
        return service.log[-tail:] if service else []

    def test_connection(self) -> str:
        self._maybe_fail("testing the connection")
        return f"the fake target answers ({self.behaviour})"
