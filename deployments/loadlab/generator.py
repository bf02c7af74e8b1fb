"""Closed-loop load at a fixed concurrency, measured as perf_analyzer measures.

`concurrency` clients each send a request, wait for its answer and send the
next, for as long as a point lasts. Time is cut into measurement windows (by
time, or by a count of answers); a request belongs to the window its answer
arrived in. A point is stable once its last three windows agree within
`stability` (10 %) on throughput and on average latency, as perf_analyzer's
--stability-percentage does; after `max_trials` windows it is reported as it
is, marked unstable. The point's figures are those three windows together.

One event loop, one kept-alive connection per client (transport.py says
why not aiohttp's client for these). The request body is built once by
tritonclient's own encoder (the console's), so no per-request serialisation
competes with the server for the CPU. Triton's statistics extension is read
at every window's end on a connection of its own, for the
server-side split of exactly the windows a point reports.

This module knows nothing of Django: it takes a Target and reports through
callbacks, so the job (deployments/loadlab/job.py) can run it in a thread of
its own while the database work stays on the job's thread.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deployments.loadlab import transport

STABLE_WINDOWS = 3
ERROR_SAMPLES = 3


@dataclass(frozen=True)
class Target:
    """Where the load goes: the model's infer and statistics addresses at the
    deployment's endpoint, the headers (key, the deployment's routing header),
    and the request body every client sends."""

    infer_url: str
    stats_url: str
    headers: dict
    body: bytes
    content_type: str
    header_length: int | None = None


@dataclass(frozen=True)
class Method:
    """perf_analyzer's measurement settings. `window_seconds` or
    `window_requests` (count windows) cuts the windows."""

    window_seconds: float = 2.0
    window_requests: int = 0
    stability: float = 0.10
    max_trials: int = 10
    request_timeout: float = 30.0


@dataclass
class Window:
    started: float
    ended: float = 0.0
    latencies_ms: list = field(default_factory=list)
    errors: int = 0
    stats: dict | None = None  # the statistics read at its end

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def answered(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else 0.0


@dataclass
class Point:
    """One concurrency's result. `requests` counts every answer the point got
    (windows or not: warm-up, the tail after its last window); `measured` is
    the windows' share, which the figures are computed from."""

    concurrency: int
    stable: bool
    trials: int
    requests: int
    errors: int
    measured: int
    throughput: float
    mean_ms: float
    percentiles_ms: dict
    server: dict
    error_samples: list
    stopped: str = ""  # why it ended before it was stable ("" when it did not)

    def as_json(self) -> dict:
        return {
            "concurrency": self.concurrency,
            "stable": self.stable,
            "trials": self.trials,
            "requests": self.requests,
            "errors": self.errors,
            "measured": self.measured,
            "throughput": round(self.throughput, 3),
            "mean_ms": round(self.mean_ms, 3),
            **{f"{name}_ms": round(value, 3) for name, value in self.percentiles_ms.items()},
            "server": self.server,
            "error_samples": self.error_samples,
            "stopped": self.stopped,
        }


PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def percentiles(latencies_ms: list) -> dict:
    if not latencies_ms:
        return {name: 0.0 for name in PERCENTILES}
    values = np.percentile(np.asarray(latencies_ms), list(PERCENTILES.values()))
    return {name: float(value) for name, value in zip(PERCENTILES, values, strict=True)}


def stable(windows: list[Window], tolerance: float) -> bool:
    """The last three windows' throughput and mean latency each within
    `tolerance` of their average (perf_analyzer's rule)."""
    if len(windows) < STABLE_WINDOWS:
        return False
    last = windows[-STABLE_WINDOWS:]
    if any(not w.latencies_ms for w in last):
        return False
    for values in ([w.throughput for w in last], [w.mean_ms for w in last]):
        average = sum(values) / len(values)
        if average <= 0 or any(abs(v - average) > tolerance * average for v in values):
            return False
    return True


def server_split(before: dict | None, after: dict | None) -> dict:
    """Triton's own view of the requests between two statistics reads: the
    average microseconds per successful request in the queue, copying inputs,
    running the model, copying outputs; and inferences per execution (the
    average batch the model ran). {} when either read failed."""
    if not before or not after:
        return {}
    delta = {key: after[key] - before[key] for key in after if key in before}
    count = delta.get("success_count", 0)
    split = {"requests": int(count), "failures": int(delta.get("fail_count", 0))}
    if count > 0:
        for part in ("queue", "compute_input", "compute_infer", "compute_output"):
            split[f"{part}_us"] = round(delta.get(f"{part}_ns", 0) / count / 1000, 1)
    executions = delta.get("execution_count", 0)
    split["executions"] = int(executions)
    split["inferences"] = int(delta.get("inference_count", 0))
    split["batch"] = round(split["inferences"] / executions, 2) if executions > 0 else None
    return split


def read_statistics(payload: dict) -> dict:
    """Sums over the versions in a `/v2/models/<m>[/versions/<v>]/stats` answer."""
    totals = dict.fromkeys(
        [
            "success_count",
            "fail_count",
            "queue_ns",
            "compute_input_ns",
            "compute_infer_ns",
            "compute_output_ns",
            "inference_count",
            "execution_count",
        ],
        0,
    )
    for model in payload.get("model_stats", []):
        stats = model.get("inference_stats", {})
        totals["success_count"] += int(stats.get("success", {}).get("count", 0))
        totals["fail_count"] += int(stats.get("fail", {}).get("count", 0))
        for part in ("queue", "compute_input", "compute_infer", "compute_output"):
            totals[f"{part}_ns"] += int(stats.get(part, {}).get("ns", 0))
        totals["inference_count"] += int(model.get("inference_count", 0))
        totals["execution_count"] += int(model.get("execution_count", 0))
    return totals


class Bounds:
    """What a whole run may spend, shared by its points; `stop_requested`
    says whether someone asked it to stop (checked several times a second)."""

    def __init__(self, *, max_requests: int, deadline: float, stop_requested: Callable[[], bool] = lambda: False):
        self.max_requests = max_requests
        self.deadline = deadline
        self.stop_requested = stop_requested
        self.sent = 0

    def reason_to_stop(self) -> str:
        if self.stop_requested():
            return "cancelled"
        if self.sent >= self.max_requests:
            return f"the run's bound of {self.max_requests} requests"
        if time.monotonic() >= self.deadline:
            return "the run's time bound"
        return ""


class _Run:
    """One point: the clients, the windows, the statistics reads."""

    def __init__(self, target: Target, method: Method, concurrency: int, bounds: Bounds, on_window):
        self.target, self.method, self.concurrency, self.bounds = target, method, concurrency, bounds
        self.on_window = on_window
        self.windows: list[Window] = []
        self.current = Window(started=time.perf_counter())
        self.answered = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.stopping = False
        self.window_full = asyncio.Event()
        self.request_headers = {**target.headers, "Content-Type": target.content_type}
        if target.header_length is not None:
            self.request_headers["Inference-Header-Content-Length"] = str(target.header_length)

    async def client(self) -> None:
        target = self.target
        connection = transport.Connection(target.infer_url, self.request_headers, target.body)
        try:
            while not self.stopping:
                if self.bounds.sent >= self.bounds.max_requests:
                    return
                self.bounds.sent += 1
                started = time.perf_counter()
                try:
                    status, body = await connection.send(self.method.request_timeout)
                    ok = status == 200
                    problem = "" if ok else f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
                except (OSError, TimeoutError, transport.ResponseError) as exc:
                    ok, problem = False, f"{type(exc).__name__}: {exc}"[:250]
                ended = time.perf_counter()
                self.answered += 1
                window = self.current
                if ok:
                    window.latencies_ms.append((ended - started) * 1000)
                else:
                    self.errors += 1
                    window.errors += 1
                    if len(self.error_samples) < ERROR_SAMPLES and problem not in self.error_samples:
                        self.error_samples.append(problem)
                if self.method.window_requests and window.answered >= self.method.window_requests:
                    self.window_full.set()
        finally:
            connection.close()

    async def statistics(self, connection: transport.Connection) -> dict | None:
        try:
            status, body = await connection.send(5.0)
            return read_statistics(json.loads(body)) if status == 200 else None
        except (OSError, TimeoutError, transport.ResponseError, ValueError):
            return None

    async def wait_window(self) -> str:
        """Until the current window is over; why the run must stop, if it must."""
        end = self.current.started + self.method.window_seconds
        while True:
            reason = self.bounds.reason_to_stop()
            if reason:
                return reason
            if self.method.window_requests:
                if self.window_full.is_set():
                    return ""
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.window_full.wait(), timeout=0.2)
                continue
            left = end - time.perf_counter()
            if left <= 0:
                return ""
            await asyncio.sleep(min(left, 0.2))

    async def measure(self) -> Point:
        stats_headers = {k: v for k, v in self.target.headers.items() if k.lower() != "content-type"}
        stats = transport.Connection(self.target.stats_url, stats_headers, method="GET")
        try:
            first_stats = await self.statistics(stats)
            self.current = Window(started=time.perf_counter(), stats=first_stats)
            clients = [asyncio.create_task(self.client()) for _ in range(self.concurrency)]
            stopped = ""
            try:
                while len(self.windows) < self.method.max_trials:
                    stopped = await self.wait_window()
                    if stopped:
                        break
                    window, self.current = self.current, Window(started=time.perf_counter())
                    self.window_full.clear()
                    window.ended = self.current.started
                    window.stats = await self.statistics(stats)
                    self.windows.append(window)
                    self.on_window(self.concurrency, len(self.windows), window)
                    if stable(self.windows, self.method.stability):
                        break
            finally:
                self.stopping = True
                await asyncio.gather(*clients, return_exceptions=True)
        finally:
            stats.close()
        return self.point(stopped, first_stats)

    def point(self, stopped: str, first_stats: dict | None) -> Point:
        used = self.windows[-STABLE_WINDOWS:]
        latencies = [ms for w in used for ms in w.latencies_ms]
        seconds = sum(w.seconds for w in used)
        before = self.windows[-STABLE_WINDOWS - 1].stats if len(self.windows) > STABLE_WINDOWS else first_stats
        return Point(
            concurrency=self.concurrency,
            stable=stable(self.windows, self.method.stability),
            trials=len(self.windows),
            requests=self.answered,
            errors=self.errors,
            measured=sum(w.answered for w in used),
            throughput=len(latencies) / seconds if used else 0.0,
            mean_ms=float(np.mean(latencies)) if latencies else 0.0,
            percentiles_ms=percentiles(latencies),
            server=server_split(before, used[-1].stats) if used else {},
            error_samples=self.error_samples,
            stopped=stopped,
        )


def measure_point(target: Target, method: Method, concurrency: int, bounds: Bounds, on_window=None) -> Point:
    """One concurrency, measured until stable or out of trials (or bounds)."""
    run = _Run(target, method, concurrency, bounds, on_window or (lambda *args: None))
    return asyncio.run(run.measure())
