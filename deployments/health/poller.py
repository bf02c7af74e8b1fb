"""The health round: probe every running deployment at once, then write only
what changed (a HealthSample, the new status, its audit event) and, for the
rest, one bulk update of the last-checked time and latency window."""

import asyncio
import statistics
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments import crypto
from deployments.audit import audit
from deployments.health.probes import ProbeResult, ProbeTarget, poll_round
from deployments.health.verdict import observation_json, status_from
from deployments.models import Deployment, HealthSample, Operation
from workers.targets.descriptor import Probe

# Probe latencies kept per deployment for the rolling p50/p95 (1 h at 15 s).
LATENCY_WINDOW = 240


@dataclass(frozen=True)
class RoundReport:
    checked: int
    changed: int
    seconds: float


def _targets(deployments) -> list[ProbeTarget]:
    targets = []
    for deployment in deployments:
        try:
            key = crypto.decrypt(deployment.key_encrypted) if deployment.key_encrypted else ""
        except crypto.SecretUnreadable:
            key = ""  # probed without it: the 401 says what is wrong, the round goes on
        models = (
            tuple((m.name, tuple(m.served_versions)) for m in deployment.repository.models.all())
            if deployment.repository
            else ()
        )
        reason = deployment.status_reason
        suspect = reason.startswith(("no answer within", "unreachable"))
        behind = deployment.target.descriptor.entry_exposes_triton
        targets.append(ProbeTarget(deployment.pk, deployment.scoring_uri, key, models, suspect, behind))
    return targets


def _verdict(result: ProbeResult) -> tuple[str, str, list[dict]]:
    status, reason = status_from(result.observation)
    return status, reason, [m.as_dict() for m in result.observation.models]


def _changed(deployment: Deployment, status: str, reason: str, models: list[dict]) -> bool:
    seen = deployment.observed or {}
    return deployment.status != status or deployment.status_reason != reason or seen.get("models") != models


def _record_change(deployment: Deployment, result: ProbeResult, status: str, reason: str, now) -> None:
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.status not in Deployment.RUNNING or locked.operations.filter(status__in=Operation.ACTIVE).exists():
            return  # an operation took over meanwhile; its outcome decides
        before = {"status": locked.status, "reason": locked.status_reason}
        observed = {**(locked.observed or {}), **observation_json(result.observation)}
        # Probes see the data plane only; the traffic split comes from the reconciler.
        observed["traffic"] = (locked.observed or {}).get("traffic", {})
        locked.status, locked.status_reason, locked.observed = status, reason, observed
        locked.checked_at = now
        locked.probe_latencies = _window(locked.probe_latencies, result.latency_ms)
        locked.save(
            update_fields=["status", "status_reason", "observed", "checked_at", "probe_latencies", "updated_at"]
        )
        HealthSample.objects.create(
            deployment=locked,
            at=now,
            status=status,
            reason=reason,
            live=result.observation.live,
            ready=result.observation.ready,
            model_states=observed["models"],
            latency_ms=result.latency_ms,
        )
        if before["status"] != status:
            audit(
                action="deployment.status_changed",
                obj=locked,
                before=before,
                after={"status": status, "reason": reason},
            )


def _window(latencies: list, latency: float | None) -> list:
    if latency is None:
        return latencies
    return [*latencies, round(latency, 2)][-LATENCY_WINDOW:]


def health_round() -> RoundReport:
    started = timezone.now()
    deployments = [
        deployment
        for deployment in Deployment.objects.filter(
            desired_state=Deployment.Desired.PRESENT, status__in=Deployment.RUNNING, scoring_uri__gt=""
        )
        .exclude(operations__status__in=Operation.ACTIVE)
        .select_related("repository", "target")
        .prefetch_related("repository__models")
        # Kinds with no address to probe from here are observed by the reconciler alone.
        if deployment.target.descriptor.probe == Probe.TRITON_HTTP
    ]
    results = asyncio.run(
        poll_round(
            _targets(deployments), concurrency=settings.HEALTH_CONCURRENCY, timeout=settings.HEALTH_PROBE_TIMEOUT
        )
    )
    by_id = {d.pk: d for d in deployments}
    now = timezone.now()
    unchanged, changed = [], 0
    for result in results:
        deployment = by_id[result.deployment_id]
        status, reason, models = _verdict(result)
        if _changed(deployment, status, reason, models):
            _record_change(deployment, result, status, reason, now)
            changed += 1
        else:
            deployment.checked_at = now
            deployment.probe_latencies = _window(deployment.probe_latencies, result.latency_ms)
            unchanged.append(deployment)
    # Nothing changed for these: one bulk statement, not a row each.
    Deployment.objects.bulk_update(unchanged, ["checked_at", "probe_latencies"], batch_size=500)
    return RoundReport(checked=len(results), changed=changed, seconds=(timezone.now() - started).total_seconds())


def latency_figures(deployment: Deployment) -> dict:
    latencies = deployment.probe_latencies or []
    if len(latencies) < 2:
        return {"p50": latencies[0] if latencies else None, "p95": latencies[0] if latencies else None}
    cuts = statistics.quantiles(latencies, n=20)
    return {"p50": round(statistics.median(latencies), 1), "p95": round(cuts[18], 1)}


def availability(deployment: Deployment, *, hours: int = 24) -> float | None:
    """Share of the window spent healthy or degraded, from the transitions."""
    now = timezone.now()
    since = now - timedelta(hours=hours)
    samples = list(deployment.health_samples.filter(at__gte=since).order_by("at").values_list("at", "status"))
    previous = deployment.health_samples.filter(at__lt=since).order_by("-at").values_list("status", flat=True).first()
    if not samples and previous is None:
        return None
    up, cursor, state = 0.0, since, previous
    for at, status in samples:
        if state in (Deployment.Status.HEALTHY, Deployment.Status.DEGRADED):
            up += (at - cursor).total_seconds()
        cursor, state = at, status
    if state in (Deployment.Status.HEALTHY, Deployment.Status.DEGRADED):
        up += (now - cursor).total_seconds()
    known = (now - (since if previous is not None else samples[0][0])).total_seconds()
    return round(100 * up / known, 2) if known > 0 else None
