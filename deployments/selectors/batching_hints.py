"""One plain sentence per model about its batching, from its config and what
Triton counted over the window. Pure: figures in, words out.

The thresholds are rules of thumb, not measurements: "concurrent" is about
1.5 requests in Triton at once or more (below that there is rarely a second
request to combine with); a queue holding requests for half their time or
more is worth a sentence.
"""

from dataclasses import dataclass

from deployments.health.counter_window import ModelWindow

CONCURRENT = 1.5
BUSY_QUEUE = 0.5
# A batch this close to the largest allowed counts as full.
FULL = 0.9


@dataclass(frozen=True)
class BatchingConfig:
    """What a model's config says about batching. `scheduler`: "dynamic",
    "sequence", "none" (Triton's default scheduler: one request per
    execution), "ensemble", or "unknown" (left to auto-complete, unreadable,
    or no config recorded); `max_batch_size` None when unknown."""

    scheduler: str = "unknown"
    max_batch_size: int | None = None
    preferred: tuple[int, ...] = ()
    max_queue_delay_us: int = 0


def hint(config: BatchingConfig, window: ModelWindow | None, lifetime: ModelWindow | None, span: str) -> str:
    """`span`: the window in words ("15 minutes")."""
    if config.scheduler == "ensemble":
        return "An ensemble only passes tensors between its steps: batching happens in the models it calls."
    if window is None or not window.executions:
        return _idle(window, lifetime, span)
    batch, queue, flight = window.average_batch, window.queue_share or 0.0, window.in_flight or 0.0
    at = f"about {flight:.0f} concurrent requests" if flight >= CONCURRENT else "one request at a time"
    if config.max_batch_size == 0:
        crowd = f", at {at}" if flight >= CONCURRENT else ""
        return (
            f"This model does not batch (max_batch_size 0): every request runs on its own{crowd}. "
            "A max_batch_size above 0 and dynamic_batching would let Triton combine concurrent ones."
        )
    if config.scheduler == "none":
        if flight < CONCURRENT:
            return (
                f"Dynamic batching is off, and requests came one at a time (average batch {batch:.1f}): "
                "there was nothing to combine yet." + _failures(window)
            )
        upto = f", up to {config.max_batch_size} per execution" if config.max_batch_size else ""
        return (
            f"Dynamic batching is off; at {at} the average batch is {batch:.1f}: "
            f"each request runs alone. Adding dynamic_batching to config.pbtxt lets Triton combine them{upto}."
            + _failures(window)
        )
    if config.scheduler == "sequence":
        said = f"The sequence batcher runs this model: average batch {batch:.1f} at {at}."
    elif config.scheduler == "unknown":
        said = (
            f"At {at} the average batch is {batch:.1f}; whether dynamic batching is on "
            "is not in a config.pbtxt the dashboard could read (Triton's auto-complete decides)."
        )
    else:
        said = _dynamic(config, batch, queue, flight, at)
    return said + _failures(window)


def _dynamic(config: BatchingConfig, batch: float, queue: float, flight: float, at: str) -> str:
    largest = config.max_batch_size
    on = "Dynamic batching is on"
    if flight < CONCURRENT and batch < CONCURRENT:
        return (
            f"{on}, but requests came one at a time, so batches stay near {batch:.1f}: it pays under concurrent load."
        )
    if largest and batch >= FULL * largest and queue >= BUSY_QUEUE:
        return (
            f"Batches are nearly full ({batch:.1f} of {largest}) and requests spend {queue:.0%} of their time "
            "queued: the model is saturated. More instances (instance_group count) would serve more."
        )
    if queue >= BUSY_QUEUE:
        delay = f" (max_queue_delay {config.max_queue_delay_us} µs)" if config.max_queue_delay_us else ""
        return (
            f"Requests spend {queue:.0%} of their time queued while batches average {batch:.1f}"
            f"{f' of {largest}' if largest else ''}: the model cannot keep up at {at}. "
            f"More instances, or a shorter queue delay{delay}, would cut the wait."
        )
    if config.preferred and batch < min(config.preferred):
        wait = (
            f"after max_queue_delay ({config.max_queue_delay_us} µs)"
            if config.max_queue_delay_us
            else "at once (max_queue_delay 0)"
        )
        return (
            f"Batches average {batch:.1f}, below the smallest preferred size ({min(config.preferred)}): at {at} "
            f"too few requests wait to fill one, so Triton runs what it has {wait}."
        )
    return f"{on} and combining requests: {batch:.1f} per execution on average at {at}."


def _failures(window: ModelWindow) -> str:
    # Triton counts a failed execution among the executions but its requests among no inferences.
    if not window.failure:
        return ""
    return (
        f" ({window.failure:.0f} failed request{'s' if window.failure != 1 else ''} counted as executions without "
        "inferences: the batches that succeeded were a little larger.)"
    )


def _idle(window: ModelWindow | None, lifetime: ModelWindow | None, span: str) -> str:
    said = f"No requests in the last {span}." if window is not None else "No window yet: it needs a second read."
    if lifetime and lifetime.executions:
        said += (
            f" Since its server started: average batch {lifetime.average_batch:.1f} over "
            f"{lifetime.executions:.0f} execution{'s' if lifetime.executions != 1 else ''}."
        )
    return said
