"""What the SDK v1 and v2 adapters share: the tags they put on Azure
resources, and the probe of a Triton behind an Azure scoring URI."""

import re
from pathlib import Path

import httpx

from workers.targets.base import DeploymentRef, ModelState, Observation

# Tags on webservices, deployments and models: which operation submitted
# them (a re-driven attempt finds its own work), which spec, which repository.
TAG_OPERATION = "triton-dashboard-operation"
TAG_SPEC = "triton-dashboard-spec"
TAG_DIGEST = "triton-dashboard-repository"
PROBE_TIMEOUT = 5.0


def azure_model_name(line_name: str) -> str:
    """The line's name as an Azure ML model name: letters, digits, '-', '_'
    and '.', starting with a letter or digit, at most 255 characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", line_name).strip("-_.")
    return name[:255] or "model"


def upload_size(folder: Path) -> str:
    """What an upload of `folder` sends, in words: "12.3 MB in 14 files"."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    return f"{size / 1_000_000:.1f} MB in {len(files)} file{'s' if len(files) != 1 else ''}"


def workspace_key(settings: dict) -> str:
    """One workspace, whichever target (or SDK) reaches it."""
    return f"{settings['subscription_id']}/{settings['resource_group']}/{settings['workspace_name']}"


def probe_triton(base: str, key: str, ref: DeploymentRef, observation: Observation, deployment: str = "") -> None:
    """Liveness, readiness and each known model version, with the endpoint
    key (and, behind an endpoint with several deployments, the header that
    reaches one of them)."""
    observation.key = key
    if not ref.probe:
        return  # the health poller probes it; the reconciler wants the control plane only
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT, headers=headers, follow_redirects=False) as client:
            observation.live = client.get(f"{base}/v2/health/live").status_code == 200
            observation.ready = client.get(f"{base}/v2/health/ready").status_code == 200
            if not ref.models:
                # An adopted service: which Triton models it holds is not recorded here.
                reason = "" if observation.ready else "server not ready"
                observation.models.append(ModelState("(server)", "", observation.ready, reason))
            for name, versions in ref.models:
                for version in versions:
                    answer = client.get(f"{base}/v2/models/{name}/versions/{version}/ready")
                    ready = answer.status_code == 200
                    observation.models.append(
                        ModelState(name, str(version), ready, "" if ready else f"HTTP {answer.status_code}")
                    )
    except httpx.HTTPError as exc:
        observation.live = False
        observation.detail = f"{observation.detail}; probe failed: {type(exc).__name__}"
