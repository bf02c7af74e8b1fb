"""What a rollout's gates compare: one deployment's figures over a bake
window, from two reads of cumulative counters (Triton's /metrics or its
statistics extension) and, where the kind has them, percentiles read for
the window from elsewhere (Azure Monitor)."""

from dataclasses import dataclass, field


@dataclass
class Counters:
    """One read of one deployment's cumulative counters, summed over its models.
    Times in microseconds. `quantiles` are latency percentiles the source
    computes itself ({"p95": us, "p99": us}: Triton's latency summaries);
    empty where it gives none."""

    success: float = 0.0
    failures: dict[str, float] = field(default_factory=dict)
    request_us: float = 0.0
    queue_us: float = 0.0
    compute_us: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "success": self.success,
            "failures": dict(self.failures),
            "request_us": self.request_us,
            "queue_us": self.queue_us,
            "compute_us": self.compute_us,
            "quantiles": dict(self.quantiles),
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
        )
