"""Triton's cumulative counters per model, kept as a short history of reads
in `Deployment.metrics_last`, and turned into what happened over a recent
window: differences between the newest read and the oldest one kept.

Differences of cumulative counters are exact whatever the spacing of the
reads (a late scrape, two in one minute), which per-minute rates averaged
together are not. `metrics_last` looks like:

    {"at": unix seconds, "source": where the counters were read,
     "counters": {model: {"success": n, "executions": n, ...}},
     "history": [{"at": ..., "counters": {...}}, ...]}   (oldest first)

A read from another source (another Triton behind the endpoint after a
redeploy, another endpoint deployment taking the traffic) starts the history
again: its counters do not continue the previous ones. A counter that went
backwards means its server restarted: that model counts from zero, which
undercounts the window rather than inventing requests.
"""

import itertools
from dataclasses import dataclass, field

WINDOW_SECONDS = 15 * 60
# Reads kept at most, whatever their spacing (tests and a busy beat scrape often).
MAX_READS = 32


def remember(last: dict, counters: dict, *, now: float, source: str) -> dict:
    """The next `metrics_last`: this read, and the earlier reads still within the window."""
    history = []
    if last.get("at") and last.get("source", "") == source:
        history = [*last.get("history", []), {"at": last["at"], "counters": last.get("counters", {})}]
    history = [read for read in history if now - read["at"] <= WINDOW_SECONDS][-MAX_READS:]
    return {"at": now, "source": source, "counters": counters, "history": history}


@dataclass
class ModelWindow:
    """One model's differences over the window; times in microseconds.
    `busy_seconds` adds up the stretches between reads in which it answered
    a request (see `in_flight`)."""

    success: float = 0.0
    failure: float = 0.0
    inferences: float = 0.0
    executions: float = 0.0
    request_us: float = 0.0
    queue_us: float = 0.0
    busy_seconds: float = 0.0
    restarted: bool = False

    @property
    def requests(self) -> float:
        return self.success + self.failure

    @property
    def average_batch(self) -> float | None:
        return self.inferences / self.executions if self.executions else None

    @property
    def queue_share(self) -> float | None:
        return self.queue_us / self.request_us if self.request_us else None

    @property
    def in_flight(self) -> float | None:
        """About how many requests were in Triton at once while it worked:
        the larger of two estimates that can each only fall short. Little's
        law over the busy stretches spreads a burst shorter than a stretch
        over all of it; 1 ÷ (1 - queue share) is exact for one instance
        running one request at a time (the others wait) and falls short
        with more instances or batches."""
        if not self.busy_seconds or not self.request_us:
            return None
        spread = self.request_us / 1e6 / self.busy_seconds
        waiting = self.request_us / (self.request_us - self.queue_us) if self.request_us > self.queue_us else spread
        return max(spread, waiting)


@dataclass
class Window:
    """From `start` to `end` (unix seconds); `models` by name. `start` is
    None until two reads exist: one read alone spans no time."""

    start: float | None
    end: float | None
    models: dict[str, ModelWindow] = field(default_factory=dict)
    # Each model's counters at the newest read: since its server started.
    lifetime: dict[str, ModelWindow] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.end - self.start if self.start is not None and self.end is not None else 0.0


_FIELDS = ("success", "failure", "inferences", "executions", "request_us", "queue_us")


def window(last: dict) -> Window:
    """What the reads kept in `last` (a `metrics_last`) say about the window."""
    reads = [*last.get("history", []), {"at": last.get("at"), "counters": last.get("counters", {})}]
    newest = reads[-1]
    lifetime = {model: _values(counts) for model, counts in newest["counters"].items()}
    if not newest["at"] or len(reads) < 2:
        return Window(start=None, end=newest["at"], lifetime=lifetime)
    models = {model: ModelWindow() for model in newest["counters"]}
    for before, after in itertools.pairwise(reads):
        seconds = after["at"] - before["at"]
        for model, now in after["counters"].items():
            step, restarted = _difference(before["counters"].get(model, {}), now)
            total = models.setdefault(model, ModelWindow())
            for name in _FIELDS:
                setattr(total, name, getattr(total, name) + getattr(step, name))
            total.restarted |= restarted
            if step.requests:
                total.busy_seconds += seconds
    return Window(start=reads[0]["at"], end=newest["at"], models=models, lifetime=lifetime)


def _values(counts: dict) -> ModelWindow:
    return ModelWindow(**{name: float(counts.get(name, 0.0)) for name in _FIELDS})


def _difference(before: dict, now: dict) -> tuple[ModelWindow, bool]:
    step = {name: now.get(name, 0.0) - before.get(name, 0.0) for name in _FIELDS}
    if any(value < 0 for value in step.values()):
        return _values(now), True
    return ModelWindow(**step), False
