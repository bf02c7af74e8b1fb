"""The fake with an endpoint shape: deployments side by side behind one
address, a traffic split, and counters that tests set per deployment (what
a rollout's gates read). For the fast tier's rollout tests only."""

from dataclasses import dataclass, field

from workers.targets.base import (
    DeploymentRef,
    DeployResult,
    DeploySpec,
    ModelState,
    Observation,
    Progress,
    TargetError,
    endpoint_deployment_name,
)
from workers.targets.counters import Counters
from workers.targets.fake.adapter import _LOCK, CALLS, FakeTarget


@dataclass
class FakeEndpoint:
    scoring_uri: str
    traffic: dict[str, int] = field(default_factory=dict)
    # deployment name -> spec digest
    deployments: dict[str, str] = field(default_factory=dict)


# (target id, endpoint name) -> the endpoint; (target id, deployment name) -> its counters.
ENDPOINTS: dict[tuple[int, str], FakeEndpoint] = {}
COUNTERS: dict[tuple[int, str], Counters] = {}


def reset() -> None:
    with _LOCK:
        ENDPOINTS.clear()
        COUNTERS.clear()


class FakeEndpointTarget(FakeTarget):
    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        self._maybe_fail("deploying")
        name = endpoint_deployment_name(spec.spec_digest)
        with _LOCK:
            endpoint = ENDPOINTS.setdefault(
                (self.target.pk, spec.name), FakeEndpoint(f"fake://{self.target.name}/{spec.name}")
            )
            if name not in endpoint.deployments:
                CALLS[(self.target.pk, "create")] += 1
                endpoint.deployments[name] = spec.spec_digest
            if spec.candidate and any(endpoint.traffic.values()):
                endpoint.traffic.setdefault(name, 0)
            else:
                endpoint.traffic = {name: 100}
                endpoint.deployments = {name: spec.spec_digest}
        progress(f"Fake deployment {name} on endpoint {spec.name}")
        return DeployResult(scoring_uri=endpoint.scoring_uri)

    def status(self, ref: DeploymentRef) -> Observation:
        endpoint = ENDPOINTS.get((self.target.pk, ref.name))
        if endpoint is None:
            return Observation(exists=False, detail=f"the fake has no endpoint {ref.name}")
        main = max(sorted(endpoint.traffic), key=lambda n: endpoint.traffic[n]) if endpoint.traffic else ""
        models = [ModelState(name, str(v), True) for name, versions in ref.models for v in versions]
        return Observation(
            exists=True,
            live=True,
            ready=True,
            models=models,
            spec_digest=endpoint.deployments.get(main, ""),
            scoring_uri=endpoint.scoring_uri,
            traffic=dict(endpoint.traffic),
            deployments={n: {"provisioning": "succeeded", "spec_digest": d} for n, d in endpoint.deployments.items()},
        )

    def set_traffic(self, ref: DeploymentRef, traffic: dict[str, int], progress: Progress) -> None:
        self._count("traffic")
        endpoint = ENDPOINTS.get((self.target.pk, ref.name))
        if endpoint is None or set(traffic) - set(endpoint.deployments):
            raise TargetError(f"no such deployment on endpoint {ref.name}", permanent=True)
        with _LOCK:
            endpoint.traffic = {**{n: 0 for n in endpoint.deployments}, **traffic}
        progress("Traffic " + ", ".join(f"{n} {s}%" for n, s in sorted(traffic.items())))

    def retire(self, ref: DeploymentRef, name: str, progress: Progress) -> None:
        self._count("retire")
        endpoint = ENDPOINTS.get((self.target.pk, ref.name))
        if endpoint is None or name not in endpoint.deployments:
            return
        if endpoint.traffic.get(name, 0) > 0:
            raise TargetError(f"{name} still takes traffic", permanent=True)
        with _LOCK:
            endpoint.deployments.pop(name)
            endpoint.traffic.pop(name, None)
        progress(f"Fake deployment {name} removed")

    def read_counters(self, ref: DeploymentRef, name: str) -> Counters:
        endpoint = ENDPOINTS.get((self.target.pk, ref.name))
        if endpoint is None or name not in endpoint.deployments:
            raise TargetError(f"no deployment {name} to read", permanent=False)
        counters = COUNTERS.get((self.target.pk, name), Counters())
        return Counters.from_json(counters.as_json())

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        self._count("delete")
        with _LOCK:
            ENDPOINTS.pop((self.target.pk, ref.name), None)
