"""Azure ML SDK v1 (azureml-core): AKS webservices, with exactly the calls of
Azure's Triton guide (Model.register with model_framework=MULTI,
AksWebservice.deploy_configuration + Model.deploy, InferenceConfig with a
clone of the AzureML-Triton environment for entry scripts).

SDK v1 support ended on 2026-06-30; this adapter is kept for existing AKS
webservices. It never blocks in wait_for_deployment: deploy() submits and
returns, and the reconciler follows the service's state.
"""

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

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
    ModelState,
    Observation,
    Progress,
    ServiceListing,
    TargetAdapter,
    TargetError,
    doing,
)

# Model.register only accepts paths under the current directory, and the
# directory is process-wide: one registration at a time per process.
_CWD_LOCK = threading.Lock()

_STATES = {
    "Transitioning": "transitioning",
    "Healthy": "succeeded",
    "Unhealthy": "unhealthy",  # provisioned, but Azure's own probes fail
    "Failed": "failed",
    "Unschedulable": "failed",
}


def _error_text(error) -> str:
    """Azure's error object as one line: code, message, and each detail's message."""
    if not error:
        return ""
    if not isinstance(error, dict):
        return str(error)
    parts = [f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")]
    parts += [d.get("message", "") for d in error.get("details") or [] if isinstance(d, dict) and d.get("message")]
    return " — ".join(part for part in parts if part)


@contextlib.contextmanager
def _inside(directory: Path):
    with _CWD_LOCK:
        previous = os.getcwd()
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(previous)


class AzureMLv1Target(TargetAdapter):
    def __init__(self, target):
        super().__init__(target)
        self.settings = target.settings

    # --- workspace and auth ----------------------------------------------------

    def _auth(self):
        from azureml.core.authentication import (
            AzureCliAuthentication,
            MsiAuthentication,
            ServicePrincipalAuthentication,
        )

        method = self.target.auth_method
        if method == "service_principal":
            return ServicePrincipalAuthentication(
                tenant_id=self.settings["tenant_id"],
                service_principal_id=self.settings["client_id"],
                service_principal_password=self.target.secrets()["client_secret"],
                cloud="AzureCloud",
            )
        if method == "managed_identity":
            config = {"client_id": self.settings["client_id"]} if self.settings.get("client_id") else {}
            return MsiAuthentication(cloud="AzureCloud", identity_config=config) if config else MsiAuthentication()
        if method == "azure_cli":
            return AzureCliAuthentication(cloud="AzureCloud")
        raise TargetError(f"auth method {method!r} cannot reach Azure", permanent=True)

    def _workspace(self):
        from azureml.core import Workspace

        with doing("opening the workspace"):
            return Workspace(
                subscription_id=self.settings["subscription_id"],
                resource_group=self.settings["resource_group"],
                workspace_name=self.settings["workspace_name"],
                auth=self._auth(),
            )

    def _compute(self, workspace):
        from azureml.core.compute import ComputeTarget

        with doing(f"finding compute {self.settings['compute_name']}"):
            return ComputeTarget(workspace=workspace, name=self.settings["compute_name"])

    def _service(self, workspace, name: str):
        from azureml.core.webservice import Webservice
        from azureml.exceptions import WebserviceException

        try:
            with doing(f"reading webservice {name}"):
                return Webservice(workspace, name)
        except WebserviceException as exc:
            # Not found means gone here; any other answer goes to the boundary.
            if "WebserviceNotFound" in str(exc) or "No service with name" in str(exc):
                return None
            raise

    def test_connection(self) -> str:
        workspace = self._workspace()
        compute = self._compute(workspace)
        state = getattr(compute, "provisioning_state", "") or "unknown state"
        return f"workspace {workspace.name} reached; compute {compute.name} ({compute.type}): {state}"

    # --- deploy ----------------------------------------------------------------

    def model_registry(self) -> tuple[str, str]:
        return workspace_key(self.settings), "multi"

    def _register(self, workspace, spec: DeploySpec, progress: Progress):
        from azureml.core.model import Model

        # Registration is idempotent by content: a model already carrying this
        # repository's digest is reused instead of registered again. Looked
        # for under the name recorded for it, the line's, then the deployment's
        # (where models were registered before lines).
        name = azure_model_name(spec.line) if spec.line else spec.name
        for candidate in dict.fromkeys(n for n in (spec.known_model.rpartition(":")[0], name, spec.name) if n):
            with doing("listing registered models"):
                existing = Model.list(workspace, name=candidate, tags=[[TAG_DIGEST, spec.repository_digest]])
            if existing:
                model = max(existing, key=lambda m: m.version)
                progress(f"Model {model.name}:{model.version} already holds this repository; reusing it")
                return model
        staging = Path(tempfile.mkdtemp(prefix="register-"))
        try:
            # The guide's layout: models/triton/<model>/<version>/<file>.
            shutil.copytree(spec.repository_path, staging / "models" / "triton")
            progress(
                f"Registering the repository as model {name} (Model.register, framework MULTI): "
                f"uploading {upload_size(staging)}"
            )
            with _inside(staging), doing("registering the model"):
                model = Model.register(
                    workspace=workspace,
                    model_path="models",
                    model_name=name,
                    tags={TAG_DIGEST: spec.repository_digest},
                    description=f"Triton model repository {spec.repository_digest[:12]}, by Triton Dashboard",
                    model_framework=Model.Framework.MULTI,
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        progress(f"Registered {model.name}:{model.version}")
        return model

    def _inference_config(self, workspace, spec: DeploySpec, source: Path):
        from azureml.core import Environment
        from azureml.core.model import InferenceConfig

        (source / "score.py").write_text(spec.entry_script)
        with doing("reading the AzureML-Triton environment"):
            environment = Environment.get(workspace, "AzureML-Triton").clone(f"{spec.name}-env")
        for package in spec.pip_packages:
            environment.python.conda_dependencies.add_pip_package(package)
        environment.environment_variables["WORKER_COUNT"] = str(spec.worker_count)
        return InferenceConfig(entry_script="score.py", source_directory=str(source), environment=environment)

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        from azureml.core.model import Model
        from azureml.core.webservice import AksWebservice

        workspace = self._workspace()
        existing = self._service(workspace, spec.name)
        if existing is not None and (existing.tags or {}).get(TAG_OPERATION) == spec.idempotency_key:
            # A re-driven attempt: the first one submitted before its worker died.
            progress(f"Webservice {spec.name} was already submitted by this operation; not submitting again")
            return DeployResult(scoring_uri=existing.scoring_uri or "")
        model = self._register(workspace, spec, progress)
        resources = spec.resources
        config = AksWebservice.deploy_configuration(
            compute_target_name=self.settings["compute_name"],
            gpu_cores=resources.get("gpu_cores"),
            cpu_cores=resources.get("cpu_cores"),
            memory_gb=resources.get("memory_gb"),
            num_replicas=self.settings.get("num_replicas"),
            auth_enabled=spec.auth_enabled,
            tags={TAG_OPERATION: spec.idempotency_key, TAG_SPEC: spec.spec_digest},
        )
        source = Path(tempfile.mkdtemp(prefix="entry-"))
        try:
            inference_config = self._inference_config(workspace, spec, source) if spec.mode == "entry_script" else None
            progress(
                f"Submitting webservice {spec.name} to {self.settings['compute_name']} (Model.deploy; not waiting)"
            )
            with doing("submitting the webservice"):
                service = Model.deploy(
                    workspace=workspace,
                    name=spec.name,
                    models=[model],
                    inference_config=inference_config,
                    deployment_config=config,
                    deployment_target=self._compute(workspace),
                    overwrite=True,
                )
        finally:
            shutil.rmtree(source, ignore_errors=True)
        progress("Submitted; the reconciler follows the webservice until it settles")
        registered = ModelRegistration(*self.model_registry(), name=model.name, version=str(model.version))
        return DeployResult(
            scoring_uri=service.scoring_uri or "", notes=[f"model {model.name}:{model.version}"], registered=registered
        )

    # --- observe, delete, logs -------------------------------------------------

    def _key(self, service) -> str:
        if not service.auth_enabled and not getattr(service, "token_auth_enabled", False):
            return ""
        with doing("reading the webservice key"):
            if getattr(service, "token_auth_enabled", False):
                return service.get_token()[0]
            return service.get_keys()[0]

    def status(self, ref: DeploymentRef) -> Observation:
        workspace = self._workspace()
        service = self._service(workspace, ref.name)
        if service is None:
            return Observation(exists=False, detail=f"no webservice named {ref.name} in the workspace")
        with doing("reading the webservice state"):
            service.update_deployment_state()
        state = service.state or ""
        detail = _error_text(service.error)
        observation = Observation(
            exists=True,
            provisioning=_STATES.get(state, "transitioning"),
            spec_digest=(service.tags or {}).get(TAG_SPEC, ""),
            detail=f"{state}: {detail}" if detail else state,
            scoring_uri=service.scoring_uri or "",
        )
        if observation.provisioning != "succeeded" or not service.scoring_uri:
            return observation
        if ref.mode == "entry_script":
            # Entry-script services answer only /score: Azure's state is the signal.
            observation.live = observation.ready = state == "Healthy"
            reason = "" if observation.ready else f"Azure reports {state}"
            observation.models.append(ModelState("(entry script)", "", observation.ready, reason))
            return observation
        self._probe(service, ref, observation)
        return observation

    def _probe(self, service, ref: DeploymentRef, observation: Observation) -> None:
        probe_triton(service.scoring_uri.rstrip("/"), self._key(service), ref, observation)
        if service.auth_enabled:
            with doing("reading the webservice keys"):
                observation.secondary_key = (service.get_keys() or ["", ""])[1] or ""

    def regenerate_key(self, ref: DeploymentRef, which: str, progress: Progress) -> None:
        service = self._service(self._workspace(), ref.name)
        if service is None:
            raise TargetError(f"no webservice named {ref.name} in the workspace", permanent=True)
        if not service.auth_enabled:
            raise TargetError(f"webservice {ref.name} uses no keys (token or no auth)", permanent=True)
        progress(f"Regenerating the {which} key of webservice {ref.name}")
        with doing("regenerating a key"):
            service.regen_key(which.capitalize())

    def keys(self, ref: DeploymentRef) -> list[str]:
        service = self._service(self._workspace(), ref.name)
        if service is None or not service.auth_enabled:
            return []
        with doing("reading the webservice keys"):
            return [key for key in service.get_keys() if key]

    def list_services(self) -> list[ServiceListing]:
        """The workspace's webservices on this target's compute, for adoption."""
        from azureml.core.webservice import Webservice

        workspace = self._workspace()
        with doing("listing webservices"):
            services = Webservice.list(workspace, compute_type="AKS")
        return [
            ServiceListing(
                name=service.name,
                state=service.state or "",
                scoring_uri=service.scoring_uri or "",
                models=[f"{m.name}:{m.version}" for m in (service.models or [])],
                managed_here=TAG_OPERATION in (service.tags or {}),
                compute=getattr(service, "compute_name", "") or "",
            )
            for service in services
        ]

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        workspace = self._workspace()
        service = self._service(workspace, ref.name)
        if service is None:
            progress(f"No webservice {ref.name} in the workspace: nothing to delete")
            return
        progress(f"Deleting webservice {ref.name}")
        with doing("deleting the webservice"):
            service.delete()
        progress("Webservice deleted; the registered model is kept")

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        workspace = self._workspace()
        service = self._service(workspace, ref.name)
        if service is None:
            return []
        with doing("reading the webservice logs"):
            return (service.get_logs(num_lines=tail) or "").splitlines()[-tail:]
