"""Triton's cumulative counters for one deployment, as they cross the
adapter boundary: what a rollout's gates turn into figures over a window
(deployments/rollouts/figures.py)."""

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
