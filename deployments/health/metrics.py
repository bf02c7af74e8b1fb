"""Triton's Prometheus /metrics, parsed with prometheus_client's text parser
and kept as one point per series and minute (7 days, then pruned).

Counters become rates between two scrapes: requests/s and failures/s per
model, and the average queue and compute time per request; gauges (CPU and
GPU utilisation, memory) and Triton's own p95 request latency per model
(its latency summaries) are kept as read.

The counters themselves stay in `Deployment.metrics_last` with the reads of
the last quarter of an hour (counter_window.py), for the deployment page's
batching insight. Kinds that give no /metrics but reach Triton's statistics
extension through their endpoint are read into the same shape
(statistics.py), so the page reads one place whatever the kind; their rates
are kept too where one read covers the deployment (a single instance).
"""

import logging
import math
from collections import defaultdict
from datetime import timedelta
from typing import NamedTuple

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployments.health import counter_source, counter_window
from deployments.models import Deployment, MetricPoint, Operation
from workers.targets import counters as triton_counters
from workers.targets import registry
from workers.targets.base import DeploymentRef, TargetError

log = logging.getLogger(__name__)

_COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_count": "inferences",
    # Executions of the model: one per batch Triton ran, so inferences ÷ executions is the average batch.
    "nv_inference_exec_count": "executions",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_infer_duration_us": "compute_us",
}
_GAUGES = {
    "nv_cpu_utilization": "cpu_utilization",
    "nv_cpu_memory_used_bytes": "cpu_memory_bytes",
    "nv_gpu_utilization": "gpu_utilization",
    "nv_gpu_memory_used_bytes": "gpu_memory_bytes",
}


class Page(NamedTuple):
    """What a /metrics page says: counters by model then name, gauges by
    name, and Triton's own p95 request latency by model in ms (from its
    latency summaries, `summary_latencies=true` on the local kind, over its
    sliding window of about a minute; a model without a request in that
    window has none)."""

    counters: dict[str, dict[str, float]]
    gauges: dict[str, float]
    p95_ms: dict[str, float]


def parse(text: str) -> Page:
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    gauges: dict[str, float] = defaultdict(float)
    p95_ms: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            base = sample.name.removesuffix("_total")
            if base in _COUNTERS:
                model = sample.labels.get("model", "")
                counters[model][_COUNTERS[base]] += sample.value
            elif sample.name in _GAUGES:
                gauges[_GAUGES[sample.name]] += sample.value
            elif _is_p95(sample):
                model = sample.labels.get("model", "")
                p95_ms[model] = max(p95_ms.get(model, 0.0), sample.value / 1000)  # the model's worst version
    return Page({model: dict(values) for model, values in counters.items()}, dict(gauges), p95_ms)


def _is_p95(sample) -> bool:
    if sample.name != triton_counters.SUMMARY or "quantile" not in sample.labels:
        return False
    return triton_counters.quantile_name(sample.labels["quantile"]) == "p95" and not math.isnan(sample.value)


def points_between(previous: dict, current: dict, seconds: float) -> list[tuple[str, str, float]]:
    """(name, model, value) rates and averages from two scrapes' counters."""
    points = []
    for model, now in current.items():
        before = previous.get(model, {})
        delta = {key: now.get(key, 0.0) - before.get(key, 0.0) for key in now}
        if any(value < 0 for value in delta.values()):
            continue  # the server restarted: its counters began again
        requests = delta.get("success", 0.0) + delta.get("failure", 0.0)
        points.append(("requests_per_s", model, requests / seconds))
        points.append(("failures_per_s", model, delta.get("failure", 0.0) / seconds))
        if requests:
            points.append(("queue_ms", model, delta.get("queue_us", 0.0) / requests / 1000))
            points.append(("compute_ms", model, delta.get("compute_us", 0.0) / requests / 1000))
    return points


def scrape(deployment: Deployment, url: str, *, now=None) -> int:
    """Scrape one deployment's /metrics; returns the number of points written."""
    response = httpx.get(url, timeout=settings.HEALTH_PROBE_TIMEOUT)
    response.raise_for_status()
    page = parse(response.text)
    per_model = [("p95_ms", model, value) for model, value in page.p95_ms.items()]
    return record(deployment, page.counters, page.gauges, now=now or timezone.now(), source=url, per_model=per_model)


def record(
    deployment: Deployment, counters: dict, gauges: dict, *, now, source: str, rates: bool = True, per_model=()
) -> int:
    """One read's points (gauges, figures read per model, and with `rates`
    the rates since the previous read) and its counters kept for the
    batching window; returns the number of points."""
    minute = now.replace(second=0, microsecond=0)
    points = [(name, "", value) for name, value in gauges.items()] + list(per_model)
    last = deployment.metrics_last or {}
    if rates and last.get("at") and last.get("source", source) == source:
        seconds = now.timestamp() - last["at"]
        if seconds > 0:
            points += points_between(last.get("counters", {}), counters, seconds)
    kept = counter_window.remember(last, counters, now=now.timestamp(), source=source)
    with transaction.atomic():
        for name, model, value in points:
            MetricPoint.objects.update_or_create(
                deployment=deployment, name=name, model=model, minute=minute, defaults={"value": value}
            )
        Deployment.objects.filter(pk=deployment.pk).update(metrics_last=kept)
    deployment.metrics_last = kept
    return len(points)


def scrape_all() -> dict[str, int]:
    """Every running deployment whose target exposes /metrics; then prune."""
    figures = {"scraped": 0, "points": 0, "failed": 0}
    deployments = (
        Deployment.objects.filter(status__in=Deployment.RUNNING)
        .exclude(operations__status__in=Operation.ACTIVE)
        .select_related("target")
    )
    for deployment in deployments:
        source = counter_source.source_for(deployment)
        if source == counter_source.STATISTICS:
            _read_statistics(deployment, figures)
            continue
        if source != counter_source.METRICS:
            continue
        try:
            url = registry.adapter_for(deployment.target).metrics_url(DeploymentRef.of(deployment))
        except TargetError as exc:
            log.warning("no metrics address for deployment %s: %s", deployment.pk, exc.message)
            figures["failed"] += 1
            continue
        if not url:
            continue  # not running right now
        try:
            figures["points"] += scrape(deployment, url)
            figures["scraped"] += 1
        except httpx.HTTPError:
            figures["failed"] += 1
    cutoff = timezone.now() - timedelta(days=settings.METRICS_RETENTION_DAYS)
    MetricPoint.objects.filter(minute__lt=cutoff).delete()
    return figures


def _read_statistics(deployment: Deployment, figures: dict) -> None:
    from deployments.health import statistics

    try:
        counters, source = statistics.read(deployment)
    except statistics.Unreadable as exc:
        log.info("no statistics for deployment %s: %s", deployment.pk, exc)
        figures["failed"] += 1
        return
    if counters is None:
        return  # no endpoint deployment takes traffic: nothing to read
    # Rates only where one read covers the whole deployment: with several
    # instances each read reaches one, and their counters do not add up.
    rates = counter_source.single_instance(deployment)
    figures["points"] += record(deployment, counters, {}, now=timezone.now(), source=source, rates=rates)
    figures["scraped"] += 1


def series(deployment: Deployment, name: str, *, hours: int = 24, bucket_minutes: int = 1) -> dict[str, list]:
    """{model: [[unix seconds, value], ...]} for charts; with a bucket wider
    than a minute, each bucket's minutes averaged (a week of minutes would
    be 10,080 points a series)."""
    since = timezone.now() - timedelta(hours=hours)
    buckets: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    width = bucket_minutes * 60
    for minute, model, value in deployment.metric_points.filter(name=name, minute__gte=since).values_list(
        "minute", "model", "value"
    ):
        stamp = int(minute.timestamp())
        buckets[model or "server"][stamp - stamp % width].append(value)
    return {
        model: [[stamp, round(sum(values) / len(values), 4)] for stamp, values in sorted(points.items())]
        for model, points in buckets.items()
    }
