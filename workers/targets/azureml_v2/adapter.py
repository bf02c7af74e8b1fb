"""Azure ML SDK v2 (azure-ai-ml): Triton models on Kubernetes or managed
online endpoints.

One endpoint per dashboard deployment (named like it) and one Azure
deployment per spec ("s" + the spec digest's start), so a changed spec is a
new Azure deployment beside the old one: the first one takes all traffic,
later ones start at 0% until traffic is shifted.

Azure reports why a deployment failed only through the long-running
operation, not on the deployment object, so deploy() follows the operation
up to AZUREML_V2_DEPLOY_WAIT seconds; past that the operation is looked at
again later (StillInProgress), and that attempt follows the same Azure
deployment by its tag, then sets the first deployment's traffic.
"""

import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings as django_settings

from workers.targets.azure.common import (
    TAG_DIGEST,
    TAG_OPERATION,
    TAG_SPEC,
    azure_model_name,
    probe_triton,
    upload_size,
    workspace_key,
)
from workers.targets.base import (
    DeploymentRef,
    DeployResult,
    DeploySpec,
    ModelRegistration,
    Observation,
    Progress,
    StillInProgress,
    TargetAdapter,
    TargetError,
    doing,
    endpoint_deployment_name,
)

_POLL_EVERY = 2.0
# Seconds before an operation whose Azure deployment is still provisioning is looked at again.
_CHECK_AGAIN = 30
_STATES = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Canceled": "failed",
    "Creating": "transitioning",
    "Updating": "transitioning",
    "Scaling": "transitioning",
    "Deleting": "transitioning",
}


def _state(deployment) -> str:
    """The provisioning state as Azure spells it (the SDK hands back an enum from lists)."""
    state = deployment.provisioning_state or ""
    return getattr(state, "value", state)


def azure_deployment_name(spec_digest: str) -> str:
    return endpoint_deployment_name(spec_digest)


class AzureMLv2Target(TargetAdapter):
    """Online endpoints; the subclasses say on which compute."""

    kubernetes = False

    def __init__(self, target):
        super().__init__(target)
        self.settings = target.settings

    # --- client ----------------------------------------------------------------

    def _credential(self):
        from azure.identity import AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential

        method = self.target.auth_method
        if method == "service_principal":
            return ClientSecretCredential(
                tenant_id=self.settings["tenant_id"],
                client_id=self.settings["client_id"],
                client_secret=self.target.secrets()["client_secret"],
            )
        if method == "managed_identity":
            return ManagedIdentityCredential(client_id=self.settings.get("client_id") or None)
        if method == "azure_cli":
            return AzureCliCredential()
        raise TargetError(f"auth method {method!r} cannot reach Azure", permanent=True)

    def _client(self):
        from azure.ai.ml import MLClient

        with doing("connecting to the workspace"):
            return MLClient(
                self._credential(),
                self.settings["subscription_id"],
                self.settings["resource_group"],
                self.settings["workspace_name"],
                show_progress=False,
            )

    @staticmethod
    def _follow(poller, progress: Progress, what: str, wait: float | None = None) -> bool:
        """Wait for a long-running operation while heartbeating; True when done."""
        deadline = None if wait is None else time.monotonic() + wait
        while not poller.done():
            if deadline is not None and time.monotonic() > deadline:
                return False
            progress(None)
            poller.wait(_POLL_EVERY)
        with doing(what):
            poller.result()
        return True

    def _settle(self, client, endpoint: str, name: str, progress: Progress) -> None:
        """Follow a deployment an earlier attempt submitted until Azure
        settles it (up to AZUREML_V2_DEPLOY_WAIT), heartbeating."""
        deadline = time.monotonic() + django_settings.AZUREML_V2_DEPLOY_WAIT
        while True:
            with doing("reading the deployment"):
                state = _state(client.online_deployments.get(name=name, endpoint_name=endpoint))
            if state == "Succeeded":
                return
            if _STATES.get(state) == "failed":
                raise TargetError(f"deployment {name} ended {state} at Azure (its logs say why)", permanent=True)
            if time.monotonic() > deadline:
                raise StillInProgress(f"deployment {name} is still {state}", check_in=_CHECK_AGAIN)
            progress(None)
            time.sleep(_POLL_EVERY)

    def test_connection(self) -> str:
        client = self._client()
        with doing("reading the workspace"):
            workspace = client.workspaces.get(self.settings["workspace_name"])
        where = f"compute {self.settings['compute_name']}" if self.kubernetes else "managed compute"
        return f"workspace {workspace.name} ({workspace.location}) reached; deploys to {where}"

    # --- deploy ----------------------------------------------------------------

    def model_registry(self) -> tuple[str, str]:
        return workspace_key(self.settings), "triton_model"

    def _recorded(self, client, spec: DeploySpec):
        """The model version recorded for this content, if it still holds it."""
        from azure.core.exceptions import ResourceNotFoundError

        name, _, version = spec.known_model.rpartition(":")
        if not name:
            return None
        try:
            with doing("reading the recorded model"):
                model = client.models.get(name=name, version=version)
        except ResourceNotFoundError:
            return None
        return model if (model.tags or {}).get(TAG_DIGEST) == spec.repository_digest else None

    def _register(self, client, spec: DeploySpec, progress: Progress):
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model
        from azure.core.exceptions import ResourceNotFoundError

        model = self._recorded(client, spec)
        if model is not None:
            progress(f"Model {model.name}:{model.version} already holds this repository; reusing it")
            return model
        # Under the line's name, then the deployment's (where models were
        # registered before lines): a version carrying this digest is reused.
        name = azure_model_name(spec.line) if spec.line else spec.name
        for candidate in dict.fromkeys((name, spec.name)):
            try:
                versions = list(client.models.list(name=candidate))
            except ResourceNotFoundError:
                versions = []
            for model in versions:
                if (model.tags or {}).get(TAG_DIGEST) == spec.repository_digest:
                    progress(f"Model {model.name}:{model.version} already holds this repository; reusing it")
                    return model
        staging = Path(tempfile.mkdtemp(prefix="register-"))
        try:
            folder = staging / "model_repository"
            shutil.copytree(spec.repository_path, folder)
            progress(f"Registering the repository as triton_model {name}: uploading {upload_size(folder)}")
            with doing("registering the model"):
                model = client.models.create_or_update(
                    Model(
                        name=name,
                        path=str(folder),
                        type=AssetTypes.TRITON_MODEL,
                        tags={TAG_DIGEST: spec.repository_digest},
                        description=f"Triton model repository {spec.repository_digest[:12]}, by Triton Dashboard",
                    )
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        progress(f"Registered {model.name}:{model.version}")
        return model

    def _endpoint(self, client, spec: DeploySpec, progress: Progress):
        from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return client.online_endpoints.get(spec.name)
        except ResourceNotFoundError:
            pass
        kind = KubernetesOnlineEndpoint if self.kubernetes else ManagedOnlineEndpoint
        extra = {"compute": self.settings["compute_name"]} if self.kubernetes else {}
        endpoint = kind(name=spec.name, auth_mode="key" if spec.auth_enabled else "aml_token", **extra)
        progress(f"Creating online endpoint {spec.name}")
        with doing("creating the endpoint"):
            poller = client.online_endpoints.begin_create_or_update(endpoint)
        self._follow(poller, progress, "creating the endpoint")
        with doing("reading the endpoint"):
            return client.online_endpoints.get(spec.name)

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        from azure.ai.ml.entities import KubernetesOnlineDeployment, ManagedOnlineDeployment
        from azure.core.exceptions import ResourceNotFoundError

        if spec.mode == "entry_script":
            raise TargetError("entry-script mode is not supported on SDK v2 targets yet", permanent=True)
        client = self._client()
        name = azure_deployment_name(spec.spec_digest)
        endpoint = self._endpoint(client, spec, progress)
        try:
            existing = client.online_deployments.get(name=name, endpoint_name=spec.name)
        except ResourceNotFoundError:
            existing = None
        registered = None
        if existing is not None and (existing.tags or {}).get(TAG_OPERATION) == spec.idempotency_key:
            progress(f"Deployment {name} was already submitted by this operation; not submitting again")
            self._settle(client, spec.name, name, progress)
        else:
            model = self._register(client, spec, progress)
            registered = ModelRegistration(*self.model_registry(), name=model.name, version=str(model.version))
            kind = KubernetesOnlineDeployment if self.kubernetes else ManagedOnlineDeployment
            deployment = kind(
                name=name,
                endpoint_name=spec.name,
                model=model,
                instance_type=self.settings["instance_type"],
                instance_count=self.settings.get("instance_count", 1),
                tags={TAG_OPERATION: spec.idempotency_key, TAG_SPEC: spec.spec_digest},
            )
            progress(f"Creating deployment {name} on endpoint {spec.name}")
            with doing("creating the deployment"):
                poller = client.online_deployments.begin_create_or_update(deployment)
            if not self._follow(
                poller, progress, "creating the deployment", wait=django_settings.AZUREML_V2_DEPLOY_WAIT
            ):
                raise StillInProgress(f"deployment {name} is still provisioning", check_in=_CHECK_AGAIN)
        endpoint = client.online_endpoints.get(spec.name)
        if not any(endpoint.traffic.values()):
            progress(f"First deployment of the endpoint: {name} takes 100% of the traffic")
            endpoint.traffic = {name: 100}
            with doing("setting traffic"):
                poller = client.online_endpoints.begin_create_or_update(endpoint)
            self._follow(poller, progress, "setting traffic")
            endpoint = client.online_endpoints.get(spec.name)
        else:
            share = endpoint.traffic.get(name, 0)
            progress(f"{name} has {share}% of the traffic; shift it when ready")
        return DeployResult(
            scoring_uri=endpoint.scoring_uri or "", notes=[f"azure deployment {name}"], registered=registered
        )

    # --- observe, delete, logs -------------------------------------------------

    def status(self, ref: DeploymentRef) -> Observation:
        """The endpoint's control plane: each Azure deployment's provisioning
        and spec, the split, the keys; and a probe through the endpoint of
        the deployment that takes the most traffic (the health poller probes
        each one by header)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self._client()
        try:
            with doing("reading the endpoint"):
                endpoint = client.online_endpoints.get(ref.name)
        except ResourceNotFoundError:
            return Observation(exists=False, detail=f"no online endpoint named {ref.name}")
        with doing("listing the endpoint's deployments"):
            present = {d.name: d for d in client.online_deployments.list(endpoint_name=ref.name)}
        deployment = self._judged(present, endpoint)
        if deployment is None:
            return Observation(exists=True, provisioning="transitioning", detail="the endpoint has no deployment yet")
        state = _state(deployment)
        observation = Observation(
            exists=True,
            provisioning=_STATES.get(state, "transitioning"),
            spec_digest=(deployment.tags or {}).get(TAG_SPEC, ""),
            detail=f"deployment {deployment.name}: {state}",
            scoring_uri=endpoint.scoring_uri or "",
        )
        # Every Azure deployment of the endpoint appears, at 0% when it has no traffic.
        observation.traffic = {name: int((endpoint.traffic or {}).get(name, 0)) for name in present}
        observation.deployments = {
            name: {
                "provisioning": _STATES.get(_state(d), "transitioning"),
                "spec_digest": (d.tags or {}).get(TAG_SPEC, ""),
                "detail": _state(d),
            }
            for name, d in present.items()
        }
        if observation.provisioning == "succeeded" and endpoint.scoring_uri:
            self._probe(client, ref, endpoint, deployment.name, observation)
        return observation

    @staticmethod
    def _judged(present: dict, endpoint):
        """The Azure deployment that decides provisioning: the one with the
        most traffic, else the newest."""
        traffic = {name: share for name, share in (endpoint.traffic or {}).items() if name in present}
        if traffic and any(traffic.values()):
            return present[max(traffic, key=traffic.get)]
        return list(present.values())[-1] if present else None

    def _endpoint_keys(self, client, name: str) -> list[str]:
        with doing("reading the endpoint keys"):
            keys = client.online_endpoints.get_keys(name)
        found = [getattr(keys, "primary_key", None), getattr(keys, "secondary_key", None)]
        found = [key for key in found if key] or [getattr(keys, "access_token", "") or ""]
        return [key for key in found if key]

    def keys(self, ref: DeploymentRef) -> list[str]:
        return self._endpoint_keys(self._client(), ref.name)

    def _probe(self, client, ref: DeploymentRef, endpoint, name: str, observation: Observation) -> None:
        keys = self._endpoint_keys(client, ref.name)
        # Triton's /v2 API under the scoring URI's parent path, as Azure's own samples call it.
        base = endpoint.scoring_uri.rstrip("/").removesuffix("/score")
        probe_triton(base, next(iter(keys), ""), ref, observation, deployment=name)
        observation.secondary_key = keys[1] if len(keys) > 1 else ""

    def regenerate_key(self, ref: DeploymentRef, which: str, progress: Progress) -> None:
        client = self._client()
        progress(f"Regenerating the {which} key of endpoint {ref.name}")
        with doing("regenerating a key"):
            poller = client.online_endpoints.begin_regenerate_keys(name=ref.name, key_type=which)
        self._follow(poller, progress, "regenerating a key")

    def set_traffic(self, ref: DeploymentRef, traffic: dict[str, int], progress: Progress) -> None:
        client = self._client()
        with doing("reading the endpoint"):
            endpoint = client.online_endpoints.get(ref.name)
        progress("Traffic " + ", ".join(f"{name} {share}%" for name, share in sorted(traffic.items())))
        endpoint.traffic = traffic
        with doing("setting traffic"):
            poller = client.online_endpoints.begin_create_or_update(endpoint)
        self._follow(poller, progress, "setting traffic")

    def retire(self, ref: DeploymentRef, name: str, progress: Progress) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._client()
        progress(f"Deleting deployment {name} of endpoint {ref.name}")
        try:
            with doing("deleting the deployment"):
                poller = client.online_deployments.begin_delete(name=name, endpoint_name=ref.name)
        except ResourceNotFoundError:
            progress(f"No deployment {name}: nothing to delete")
            return
        self._follow(poller, progress, "deleting the deployment")

    def _base_and_key(self, client, ref: DeploymentRef) -> tuple[str, str]:
        with doing("reading the endpoint"):
            endpoint = client.online_endpoints.get(ref.name)
        keys = self._endpoint_keys(client, ref.name)
        return (endpoint.scoring_uri or "").rstrip("/").removesuffix("/score"), next(iter(keys), "")

    def read_counters(self, ref: DeploymentRef, name: str):
        """Triton's statistics extension, reached through the endpoint by
        header: Azure does not pass Triton's /metrics through."""
        import httpx

        from workers.targets import counters as triton_counters

        base, key = self._base_and_key(self._client(), ref)
        headers = {"azureml-model-deployment": name, **({"Authorization": f"Bearer {key}"} if key else {})}
        try:
            answer = httpx.get(f"{base}/v2/models/stats", headers=headers, timeout=10)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise TargetError(f"reading {name}'s statistics: {type(exc).__name__}: {exc}", permanent=False) from exc
        return triton_counters.from_statistics(answer.json())

    def window_figures(self, ref: DeploymentRef, name: str, start, end) -> dict | None:
        from workers.targets.azureml_v2 import monitor

        # Azure Monitor's metrics live on the ARM that azure-ai-ml resolved
        # for this workspace's cloud (sovereign clouds differ; so do the fakes).
        arm = getattr(self._client(), "_base_url", None)
        figures = monitor.deployment_figures(
            self._credential(),
            base_url=arm,
            subscription_id=self.settings["subscription_id"],
            resource_group=self.settings["resource_group"],
            workspace=self.settings["workspace_name"],
            endpoint=ref.name,
            deployment=name,
            start=start,
            end=end,
        )
        return {
            "p95_ms": figures.get("p95_ms"),
            "p99_ms": figures.get("p99_ms"),
            "requests": figures["requests"],
            "4xx": figures["errors"]["4xx"],
            "5xx": figures["errors"]["5xx"],
        }

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._client()
        progress(f"Deleting online endpoint {ref.name} and its deployments")
        try:
            with doing("deleting the endpoint"):
                poller = client.online_endpoints.begin_delete(name=ref.name)
        except ResourceNotFoundError:
            progress("No such endpoint: nothing to delete")
            return
        self._follow(poller, progress, "deleting the endpoint")
        progress("Endpoint deleted; registered models are kept")

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._client()
        try:
            endpoint = client.online_endpoints.get(ref.name)
            deployment = self._judged(
                {d.name: d for d in client.online_deployments.list(endpoint_name=ref.name)}, endpoint
            )
        except ResourceNotFoundError:
            return []
        if deployment is None:
            return []
        with doing("reading the deployment logs"):
            text = client.online_deployments.get_logs(name=deployment.name, endpoint_name=ref.name, lines=tail)
        return (text or "").splitlines()[-tail:]


class AzureMLv2KubernetesTarget(AzureMLv2Target):
    kubernetes = True
