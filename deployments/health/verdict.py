"""One verdict from what the two planes say: the status and its reason.

The reconciler records the control plane (what the target says: provisioning,
which spec runs, the traffic split) and the health poller the data plane
(probes of Triton). `combine` is pure, so whichever job reports, the same two
records give the same status: no job can flip what the other decided.
"""

from django.utils import timezone

from deployments.models import Deployment
from workers.targets.base import Observation

# What a record's "at" and latency say changes every round; the rest changes
# only when something happened.
_VOLATILE = ("at",)


def control_json(observation: Observation) -> dict:
    """The control-plane part of what an adapter's status() said."""
    return {
        "exists": observation.exists,
        "provisioning": observation.provisioning,
        "detail": observation.detail,
        "spec_digest": observation.spec_digest,
        "traffic": dict(observation.traffic),
        "deployments": {name: dict(facts) for name, facts in observation.deployments.items()},
        "at": timezone.now().isoformat(),
    }


def control_failed(previous: dict, message: str) -> dict:
    """The control plane could not be read this round: what was known stays,
    with the error beside it (a throttled read says nothing about health)."""
    return {**previous, "error": message, "at": timezone.now().isoformat()}


def data_json(observation: Observation, deployments: dict | None = None) -> dict:
    """The data-plane part: probes of the endpoint and, where the kind routes
    by deployment, of each of its deployments on its own."""
    return {
        "live": observation.live,
        "ready": observation.ready,
        "models": [m.as_dict() for m in observation.models],
        "detail": observation.detail,
        "deployments": deployments or {},
        "at": timezone.now().isoformat(),
    }


def same(old: dict, new: dict) -> bool:
    """Equal but for when they were taken."""
    strip = lambda record: {k: v for k, v in (record or {}).items() if k not in _VOLATILE}  # noqa: E731
    return strip(old) == strip(new)


def _label(model: dict) -> str:
    return f"{model['name']} v{model['version']}" if model.get("version") else model["name"]


def _data_verdict(data: dict) -> tuple[str, str]:
    if not data.get("live"):
        return Deployment.Status.UNHEALTHY, data.get("detail") or "server not live"
    models = data.get("models") or []
    if not models:
        return Deployment.Status.UNHEALTHY, data.get("detail") or "no model is loaded"
    unavailable = [m for m in models if not m.get("ready")]
    reasons = "; ".join(f"{_label(m)} {m.get('reason') or 'not ready'}" for m in unavailable)
    if not unavailable and data.get("ready"):
        return Deployment.Status.HEALTHY, ""
    if len(unavailable) < len(models):
        return Deployment.Status.DEGRADED, reasons
    return Deployment.Status.UNHEALTHY, reasons or "server not ready"


# How a drift reason starts: the Overview's "needs you" finds drift by it.
DRIFT = "drift:"


def _drift(control: dict, desired_spec: str, candidate: str = "") -> str:
    running = control.get("spec_digest") or ""
    if not running or running in (desired_spec, candidate):
        return ""
    traffic = control.get("traffic") or {}
    for name, facts in (control.get("deployments") or {}).items():
        if facts.get("spec_digest") == desired_spec:
            return (
                f"{DRIFT} the desired spec runs as {name} at {traffic.get(name, 0)}% of the traffic, "
                f"spec {running[:12]} takes it; shift traffic to apply"
            )
    return f"{DRIFT} the target runs spec {running[:12]}, desired {desired_spec[:12]} (redeploy to apply)"


def _idle_deployments(control: dict, data: dict) -> str:
    """Deployments at 0% whose own probe fails: said, without changing the
    status (clients do not reach them)."""
    traffic = control.get("traffic") or {}
    notes = []
    for name, probe in sorted((data.get("deployments") or {}).items()):
        if traffic.get(name, 0) == 0:
            status, reason = _data_verdict(probe)
            if status != Deployment.Status.HEALTHY:
                notes.append(f"{name} (0% of the traffic) is {status}: {reason}")
    return "; ".join(notes)


def combine(control: dict, data: dict, *, desired_spec: str, candidate: str = "") -> tuple[str, str] | None:
    """The status and its reason; None while neither plane has said enough.
    `candidate`: a rollout's spec, which may take most of the traffic before
    it becomes the desired one (not drift)."""
    provisioning = control.get("provisioning", "")
    detail = control.get("detail", "")
    if provisioning == "transitioning":
        return Deployment.Status.DEPLOYING, detail or "the target is still provisioning"
    if provisioning == "failed":
        return Deployment.Status.FAILED, detail or "the target reports a failed deployment"
    if control and not control.get("exists", True):
        return Deployment.Status.UNHEALTHY, detail or "nothing is running at the target"
    if provisioning == "unhealthy":
        # Provisioned, but the target's own probes fail: it says so, whatever ours find.
        return Deployment.Status.UNHEALTHY, detail or "the target reports it unhealthy"
    if not data:
        return None
    status, reason = _data_verdict(data)
    drift = _drift(control, desired_spec, candidate)
    if drift:
        status = Deployment.Status.DEGRADED if status == Deployment.Status.HEALTHY else status
        reason = f"{drift}; {reason}" if reason else drift
    idle = _idle_deployments(control, data)
    if idle:
        reason = f"{reason}; {idle}" if reason else idle
    return status, reason


def status_from(observation: Observation) -> tuple[str, str] | None:
    """The verdict of one observation of both planes (as an adapter's status() reports them)."""
    return combine(control_json(observation), data_json(observation), desired_spec=observation.spec_digest)


def observed_view(control: dict, data: dict) -> dict:
    """Both planes as pages and the API show them."""
    traffic = control.get("traffic") or {}
    names = sorted(set(control.get("deployments") or {}) | set(data.get("deployments") or {}) | set(traffic))
    deployments = {}
    for name in names:
        facts = (control.get("deployments") or {}).get(name, {})
        probe = (data.get("deployments") or {}).get(name)
        deployments[name] = {
            "traffic": traffic.get(name, 0),
            "provisioning": facts.get("provisioning", ""),
            "spec_digest": facts.get("spec_digest", ""),
            "status": _data_verdict(probe)[0] if probe else "",
            "reason": _data_verdict(probe)[1] if probe else "",
        }
    return {
        "live": data.get("live", False),
        "ready": data.get("ready", False),
        "checked_at": data.get("at") or control.get("at"),
        "models": data.get("models", []),
        "detail": data.get("detail") or control.get("detail", ""),
        "traffic": traffic,
        "deployments": deployments,
        "control_error": control.get("error", ""),
    }
