"""What a rollout's gates compare: one deployment's figures over a bake
window, from two reads of cumulative counters (Triton's /metrics or its
statistics extension) and, where the kind has them, percentiles read for
the window from elsewhere (Azure Monitor)."""

from workers.targets.counters import Counters

__all__ = ["Counters", "between"]


def between(start: Counters, end: Counters, *, window: dict | None = None) -> dict:
    """One side's figures over a window: requests, failures by reason and
    their rate, mean and p95/p99 latency (ms), the queue's share of request
    time. `window` holds what the kind reads for the window itself
    ({"p95_ms", "p99_ms", "requests", "4xx", "5xx"}: Azure Monitor);
    otherwise percentiles are the source's own summaries as read at the
    window's end, and the endpoint's answers come from its cumulative
    counts. A counter that went backwards (a restart, a router reload)
    counts from zero.

    Failures: Triton's, by reason, and the endpoint's HTTP errors beyond
    them ("HTTP 4xx", "HTTP 5xx"): a wrong shape or a full queue is
    answered before a model runs and Triton counts it nowhere."""

    def grew(now: float, before: float) -> float:
        return now - before if now >= before else now

    window = window or {}
    success = grew(end.success, start.success)
    failures = {}
    for reason, count in end.failures.items():
        delta = grew(count, start.failures.get(reason, 0.0))
        if delta > 0:
            failures[reason] = delta
    answered = {
        key: window[key] if key in window else grew(end.answered.get(key, 0.0), start.answered.get(key, 0.0))
        for key in ("requests", "4xx", "5xx")
        if key in window or key in end.answered
    }
    counted = sum(failures.values())
    server_errors = answered.get("5xx", 0.0) - counted
    if server_errors > 0:
        failures["HTTP 5xx"] = server_errors
    if answered.get("4xx", 0.0) > 0:
        failures["HTTP 4xx"] = answered["4xx"]
    failed = sum(failures.values())
    requests = max(success + failed, answered.get("requests", 0.0))
    request_us = grew(end.request_us, start.request_us)
    queue_us = grew(end.queue_us, start.queue_us)
    return {
        "requests": int(requests),
        "failures": {reason: int(count) for reason, count in sorted(failures.items())},
        "failure_rate": round(failed / requests, 6) if requests else None,
        "mean_ms": round(request_us / success / 1000, 3) if success else None,
        "p95_ms": _ms(window.get("p95_ms"), end.quantiles.get("p95")),
        "p99_ms": _ms(window.get("p99_ms"), end.quantiles.get("p99")),
        "queue_share": round(queue_us / request_us, 6) if request_us else None,
    }


def _ms(read_ms, summary_us) -> float | None:
    if read_ms is not None:
        return round(float(read_ms), 3)
    if summary_us is None or summary_us != summary_us:  # NaN: the summary saw nothing
        return None
    return round(summary_us / 1000, 3)
