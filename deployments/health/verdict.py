"""One verdict from what a target says: the status and its reason. Pure, so
the reconciler (control plane) and the health poller (data plane) agree."""

from django.utils import timezone

from deployments.models import Deployment
from workers.targets.base import Observation


def status_from(observation: Observation) -> tuple[str, str]:
    """One status and a human reason from what the target says."""
    if observation.provisioning == "transitioning":
        return Deployment.Status.DEPLOYING, observation.detail or "the target is still provisioning"
    if observation.provisioning == "failed":
        return Deployment.Status.FAILED, observation.detail or "the target reports a failed deployment"
    if not observation.exists:
        return Deployment.Status.UNHEALTHY, observation.detail or "nothing is running at the target"
    if not observation.live:
        return Deployment.Status.UNHEALTHY, observation.detail or "server not live"
    unavailable = [m for m in observation.models if not m.ready]
    reasons = "; ".join(
        f"{m.name}{f' v{m.version}' if m.version else ''} {m.reason or 'not ready'}" for m in unavailable
    )
    if not observation.models:
        return Deployment.Status.UNHEALTHY, "no model is loaded"
    if not unavailable and observation.ready:
        return Deployment.Status.HEALTHY, ""
    if len(unavailable) < len(observation.models):
        return Deployment.Status.DEGRADED, reasons
    return Deployment.Status.UNHEALTHY, reasons or "server not ready"


def observation_json(observation: Observation) -> dict:
    return {
        "live": observation.live,
        "ready": observation.ready,
        "checked_at": timezone.now().isoformat(),
        "models": [m.as_dict() for m in observation.models],
        "detail": observation.detail,
        "traffic": observation.traffic,
    }
