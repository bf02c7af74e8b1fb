"""The health round: probe every running deployment's data plane at once,
then hand what changed to the one writer (health/record.py) and, for the
rest, write one bulk update of the last-checked time and latency window."""

import asyncio
import statistics
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from deployments import crypto
from deployments.health.probes import ProbeResult, ProbeTarget, poll_round
from deployments.health.record import Seen, observation_record, window
from deployments.health.verdict import combine, data_json, same
from deployments.models import Deployment, Operation
from workers.targets.descriptor import Probe


@dataclass(frozen=True)
class RoundReport:
    checked: int
    changed: int
    seconds: float


def probed_here(deployment: Deployment) -> bool:
    """Whether the poller probes this deployment: its kind and mode say so."""
    return deployment.target.descriptor.probe_for(deployment.mode) != Probe.ADAPTER


def _routes(deployment: Deployment) -> tuple[tuple[str, int], ...]:
    """The endpoint's provisioned deployments and their shares, where the
    kind routes by deployment (from what the reconciler last read)."""
    if not deployment.target.descriptor.probe_each_deployment:
        return ()
    control = deployment.control_plane or {}
    traffic = control.get("traffic") or {}
    known = control.get("deployments") or {}
    names = sorted(set(traffic) | set(known))
    return tuple(
        (name, int(traffic.get(name, 0)))
        for name in names
        if known.get(name, {}).get("provisioning", "succeeded") == "succeeded"
    )


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
        kind = deployment.target.descriptor
        targets.append(
            ProbeTarget(
                deployment.pk,
                deployment.scoring_uri,
                key,
                models,
                suspect=reason.startswith(("no answer within", "unreachable")),
                triton_behind_entry=kind.entry_exposes_triton,
                entry_script=kind.probe_for(deployment.mode) == Probe.ENTRY_SERVER,
                routes=_routes(deployment),
            )
        )
    return targets


def _data(result: ProbeResult) -> dict:
    deployments = {}
    for name, observation in result.by_deployment.items():
        one = data_json(observation)
        del one["deployments"], one["at"]
        deployments[name] = one
    return data_json(result.observation, deployments)


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
        if probed_here(deployment)
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
        data = _data(result)
        verdict = combine(deployment.control_plane or {}, data, desired_spec=deployment.spec_digest)
        if same(deployment.data_plane, data) and verdict == (deployment.status, deployment.status_reason):
            deployment.checked_at = now
            deployment.probe_latencies = window(deployment.probe_latencies, result.latency_ms)
            unchanged.append(deployment)
            continue
        changed += observation_record(deployment_id=deployment.pk, seen=Seen(data=data, latency_ms=result.latency_ms))
    # Nothing changed for these: one bulk statement, not a row each.
    Deployment.objects.bulk_update(unchanged, ["checked_at", "probe_latencies"], batch_size=500)
    return RoundReport(checked=len(results), changed=changed, seconds=(timezone.now() - started).total_seconds())


def latency_figures(deployment: Deployment) -> dict:
    latencies = deployment.probe_latencies or []
    if len(latencies) < 2:
        return {"p50": latencies[0] if latencies else None, "p95": latencies[0] if latencies else None}
    cuts = statistics.quantiles(latencies, n=20)
    return {"p50": round(statistics.median(latencies), 1), "p95": round(cuts[18], 1)}


def transitions(deployment: Deployment, since) -> tuple[str | None, list]:
    """The status before `since` (None if none was recorded) and the
    (at, status) transitions from then on, oldest first."""
    samples = list(deployment.health_samples.filter(at__gte=since).order_by("at").values_list("at", "status"))
    previous = deployment.health_samples.filter(at__lt=since).order_by("-at").values_list("status", flat=True).first()
    return previous, samples


def availability(deployment: Deployment, *, hours: int = 24) -> float | None:
    """Share of the window spent healthy or degraded, from the transitions."""
    now = timezone.now()
    since = now - timedelta(hours=hours)
    return availability_of(*transitions(deployment, since), since=since, now=now)


def availability_of(previous: str | None, samples: list, *, since, now) -> float | None:
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
