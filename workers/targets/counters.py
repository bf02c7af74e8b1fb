"""Triton's cumulative counters for one deployment, as they cross the
adapter boundary (`Counters`: what a rollout's gates turn into figures over
a window, deployments/rollouts/figures.py), read from either of its two
sources: the Prometheus /metrics page or the statistics extension
(`GET /v2/models/stats`). Pure: the caller fetches, these only read.

What Triton 2.51 counts (docs/facts.md, "Triton's own signals for rollout
gates"):
- A request Triton refuses before it reaches a model's scheduler (wrong
  shape, wrong data type, missing input, unknown model, a full queue) is in
  no counter at all; a Python model that answers with an error response
  instead of raising counts as a success. Only a backend failure (BACKEND),
  a queue timeout (REJECTED), a cancellation (CANCELED) and OTHER are
  failures.
- Durations (request, queue, compute) are of successful requests only.
- "compute" is Triton's compute_infer: the model's own execution, without
  the copying of inputs and outputs around it.
- Every model counts its own requests: an ensemble's request also counts in
  each model it calls.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Counters:
    """One read of one deployment's cumulative counters, summed over its models.
    Times in microseconds. `quantiles` are latency percentiles the source
    computes itself ({"p95": us, "p99": us}: Triton's latency summaries);
    empty where it gives none. `answered` is what the endpoint in front
    counted for this deployment ({"requests", "4xx", "5xx"}, cumulative):
    it sees the failures Triton answers before a model runs, which Triton's
    own counters miss; empty where the kind has no such count."""

    success: float = 0.0
    failures: dict[str, float] = field(default_factory=dict)
    request_us: float = 0.0
    queue_us: float = 0.0
    compute_us: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "success": self.success,
            "failures": dict(self.failures),
            "request_us": self.request_us,
            "queue_us": self.queue_us,
            "compute_us": self.compute_us,
            "quantiles": dict(self.quantiles),
            "answered": dict(self.answered),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Counters":
        return cls(
            success=data.get("success", 0.0),
            failures=dict(data.get("failures", {})),
            request_us=data.get("request_us", 0.0),
            queue_us=data.get("queue_us", 0.0),
            compute_us=data.get("compute_us", 0.0),
            quantiles=dict(data.get("quantiles", {})),
            answered=dict(data.get("answered", {})),
        )


# prometheus_client names a counter's samples <family>_total.
_SUCCESS = "nv_inference_request_success_total"
_FAILURE = "nv_inference_request_failure_total"
_DURATIONS = {
    "nv_inference_request_duration_us_total": "request_us",
    "nv_inference_queue_duration_us_total": "queue_us",
    "nv_inference_compute_infer_duration_us_total": "compute_us",
}
SUMMARY = "nv_inference_request_summary_us"
# The quantile label as Triton writes it (from --metrics-config summary_quantiles) -> our name.
_QUANTILES = {0.95: "p95", 0.99: "p99"}
UNKNOWN_REASON = "unknown"
STATISTICS_FAILURE = "failed"


def from_metrics(text: str) -> Counters:
    """Counters from a /metrics page, summed over models and versions.

    `quantiles` are the request-latency summaries' p95 and p99 when Triton
    publishes them (`summary_latencies=true`): the worst model's, which is
    never below the quantile of all the models' requests together. They
    cover the last minute or so before the read (Triton's sliding window),
    not the time between two reads, and only successful requests; a model
    without a request in that window has none and is left out.
    """
    counters = Counters()
    failures: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == _SUCCESS:
                counters.success += sample.value
            elif sample.name == _FAILURE:
                failures[sample.labels.get("reason", UNKNOWN_REASON)] += sample.value
            elif sample.name in _DURATIONS:
                field = _DURATIONS[sample.name]
                setattr(counters, field, getattr(counters, field) + sample.value)
            elif sample.name == SUMMARY and "quantile" in sample.labels:
                name = quantile_name(sample.labels["quantile"])
                if name and not math.isnan(sample.value):
                    counters.quantiles[name] = max(counters.quantiles.get(name, 0.0), sample.value)
    counters.failures = dict(failures)
    return counters


def from_statistics(payload: dict) -> Counters:
    """Counters from the statistics extension's answer (all models, or one
    model's `/v2/models/<m>/stats`), summed over models and versions.

    It names no failure reason: every failure is under "failed". Its
    nanoseconds become microseconds; it has no quantiles.
    """
    counters = Counters(failures={STATISTICS_FAILURE: 0.0})
    for model in payload.get("model_stats", []):
        stats = model.get("inference_stats", {})
        counters.success += _count(stats, "success")
        counters.failures[STATISTICS_FAILURE] += _count(stats, "fail")
        counters.request_us += _ns(stats, "success") / 1000
        counters.queue_us += _ns(stats, "queue") / 1000
        counters.compute_us += _ns(stats, "compute_infer") / 1000
    return counters


def quantile_name(label: str) -> str | None:
    """The name ("p95", "p99") of the quantile label Triton writes ("0.95"), else None."""
    try:
        quantile = float(label)
    except ValueError:
        return None
    return next((name for q, name in _QUANTILES.items() if math.isclose(q, quantile)), None)


def _count(stats: dict, key: str) -> float:
    return float(stats.get(key, {}).get("count", 0))


def _ns(stats: dict, key: str) -> float:
    return float(stats.get(key, {}).get("ns", 0))
