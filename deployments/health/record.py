"""The one writer of a deployment's observed status.

The reconciler hands in the control plane, the health poller the data plane,
an operation's end both. Each call merges its part into the deployment's
record under a row lock and recomputes the verdict from both (verdict.combine),
so the same facts always give the same status; a change of status is
recorded (a HealthSample) and audited once, here and nowhere else.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from deployments import crypto
from deployments.audit import audit
from deployments.health.verdict import combine, observed_view
from deployments.models import Deployment, HealthSample, Operation, Rollout

# Probe latencies kept per deployment for the rolling p50/p95 (1 h at 15 s).
LATENCY_WINDOW = 240


@dataclass(frozen=True)
class Seen:
    """What one job saw; None parts are left as they were."""

    control: dict | None = None
    data: dict | None = None
    scoring_uri: str = ""
    key: str = ""
    secondary_key: str = ""
    latency_ms: float | None = None


def window(latencies: list, latency: float | None) -> list:
    if latency is None:
        return latencies
    return [*latencies, round(latency, 2)][-LATENCY_WINDOW:]


def observation_record(*, deployment_id: int, seen: Seen) -> bool:
    """Merge what was seen and write the verdict. True if the status changed."""
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("target__environment")
            .filter(pk=deployment_id)
            .first()
        )
        if locked is None or locked.status not in Deployment.RUNNING | {Deployment.Status.DEPLOYING}:
            return False  # deleted, failed or deleting: an operation's outcome decides
        if locked.operations.filter(status__in=Operation.ACTIVE).exists():
            return False  # an operation took over meanwhile; its outcome decides
        fields = ["control_plane", "data_plane", "observed", "updated_at"]
        if seen.control is not None:
            locked.control_plane = seen.control
        if seen.data is not None:
            locked.data_plane = seen.data
            locked.checked_at = now
            locked.probe_latencies = window(locked.probe_latencies, seen.latency_ms)
            fields += ["checked_at", "probe_latencies"]
        locked.observed = observed_view(locked.control_plane, locked.data_plane)
        if seen.scoring_uri and seen.scoring_uri != locked.scoring_uri:
            fields += move_address(locked, seen.scoring_uri)
        for field, key in (("key_encrypted", seen.key), ("secondary_key_encrypted", seen.secondary_key)):
            if key and (not getattr(locked, field) or _readable(getattr(locked, field)) != key):
                setattr(locked, field, crypto.encrypt(key))
                fields.append(field)
        candidate = ""
        running = (locked.control_plane or {}).get("spec_digest")
        if running and running != locked.spec_digest:
            # Only where the target runs another spec: is it a rollout's candidate? (Not on every probe's write.)
            candidate = (
                Rollout.objects.filter(deployment=locked, status__in=[Rollout.Status.RUNNING, Rollout.Status.PAUSED])
                .values_list("candidate_digest", flat=True)
                .first()
            )
        verdict = combine(
            locked.control_plane, locked.data_plane, desired_spec=locked.spec_digest, candidate=candidate or ""
        )
        changed = False
        if verdict is not None and verdict != (locked.status, locked.status_reason):
            status, reason = verdict
            before = {"status": locked.status, "reason": locked.status_reason}
            changed = status != locked.status
            locked.status, locked.status_reason = status, reason
            fields += ["status", "status_reason"]
            # Every transition starts a segment of the availability timeline.
            HealthSample.objects.create(
                deployment=locked,
                at=now,
                status=status,
                reason=reason,
                live=locked.observed["live"],
                ready=locked.observed["ready"],
                model_states=locked.observed["models"],
                latency_ms=seen.latency_ms,
            )
            if changed:
                audit(action="deployment.status_changed", obj=locked, before=before, after=verdict_json(verdict))
        locked.save(update_fields=list(dict.fromkeys(fields)))
    return changed


def verdict_json(verdict: tuple[str, str]) -> dict:
    return {"status": verdict[0], "reason": verdict[1]}


def _readable(encrypted: str) -> str:
    try:
        return crypto.decrypt(encrypted)
    except crypto.SecretUnreadable:
        return ""  # replaced by what the target says now


def move_address(locked: Deployment, uri: str) -> list[str]:
    """Point the deployment at `uri` (the caller saves the fields returned).
    A known address that changes is kept for its page to say clients must
    move, and audited."""
    fields = ["scoring_uri", "updated_at"]
    if locked.scoring_uri and uri:
        audit(
            action="deployment.address_changed",
            obj=locked,
            before={"scoring_uri": locked.scoring_uri},
            after={"scoring_uri": uri},
        )
        locked.scoring_uri_before = locked.scoring_uri
        fields.append("scoring_uri_before")
    locked.scoring_uri = uri
    return fields
