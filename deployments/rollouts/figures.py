"""What a rollout's gates compare: one deployment's figures over a bake
window, from two reads of cumulative counters (Triton's /metrics or its
statistics extension) and, where the kind has them, percentiles read for
the window from elsewhere (Azure Monitor)."""

from workers.targets.counters import Counters

__all__ = ["Counters", "between"]


def between(start: Counters, end: Counters, *, percentiles: dict | None = None) -> dict:
    """One side's figures over a window: requests, failures by reason and
    their rate, mean and p95/p99 latency (ms), the queue's share of request
    time. Percentiles come from `percentiles` ({"p95_ms", "p99_ms"}) where
    the kind reads them for the window elsewhere, else from the source's own
    summaries as read at the window's end. A counter that went backwards
    (the server restarted) counts from zero."""

    def grew(now: float, before: float) -> float:
        return now - before if now >= before else now

    success = grew(end.success, start.success)
    failures = {
        reason: grew(count, start.failures.get(reason, 0.0))
        for reason, count in end.failures.items()
        if grew(count, start.failures.get(reason, 0.0)) > 0
    }
    failed = sum(failures.values())
    requests = success + failed
    request_us = grew(end.request_us, start.request_us)
    queue_us = grew(end.queue_us, start.queue_us)
    percentiles = percentiles or {}
    return {
        "requests": int(requests),
        "failures": {reason: int(count) for reason, count in sorted(failures.items())},
        "failure_rate": round(failed / requests, 6) if requests else None,
        "mean_ms": round(request_us / success / 1000, 3) if success else None,
        "p95_ms": _ms(percentiles.get("p95_ms"), end.quantiles.get("p95")),
        "p99_ms": _ms(percentiles.get("p99_ms"), end.quantiles.get("p99")),
        "queue_share": round(queue_us / request_us, 6) if request_us else None,
    }


def _ms(read_ms, summary_us) -> float | None:
    if read_ms is not None:
        return round(float(read_ms), 3)
    if summary_us is None or summary_us != summary_us:  # NaN: the summary saw nothing
        return None
    return round(summary_us / 1000, 3)
