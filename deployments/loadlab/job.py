"""A load test's run, in its Celery task: claim the row, build the request,
sweep the concurrencies, write each window's progress and each point as it
comes, and end with the truth (succeeded, cancelled, or failed with why).

The generator's event loop runs on a thread of its own; this thread does the
database work (progress, heartbeat, the cancel flag) so that a slow write
never stalls a client and inflates a latency.
"""

import logging
import queue as thread_queue
import threading
import time

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from deployments.audit import audit
from deployments.errors import DomainError
from deployments.loadlab import endpoint
from deployments.loadlab import generator as load
from deployments.models import LoadTest
from deployments.services import background_runs

log = logging.getLogger(__name__)

# How often the job looks at the cancel flag and beats (seconds).
LOOK_EVERY = 0.5
# Windows kept in the progress for the page's live view.
PROGRESS_WINDOWS = 12


def method_of(test) -> load.Method:
    return load.Method(
        window_seconds=test.window_seconds,
        window_requests=test.window_requests,
        stability=test.stability,
        max_trials=test.max_trials,
    )


class Sweep:
    """The points of one sweep, run one after another on a thread of their own.
    Events come back on `events`: ("window", concurrency, trial, Window),
    ("point", Point), ("done", None) or ("error", message)."""

    def __init__(self, target: load.Target, method: load.Method, concurrency: list[int], bounds: load.Bounds):
        self.target, self.method, self.concurrency, self.bounds = target, method, concurrency, bounds
        self.events: thread_queue.Queue = thread_queue.Queue()
        self.stop = threading.Event()
        self.bounds.stop_requested = self.stop.is_set
        self.thread = threading.Thread(target=self._run, name="load-generator", daemon=True)

    def _run(self) -> None:
        try:
            for concurrency in self.concurrency:
                point = load.measure_point(self.target, self.method, concurrency, self.bounds, self._window)
                self.events.put(("point", point))
                if point.stopped:
                    break
            self.events.put(("done", None))
        except Exception as exc:  # the job says what broke; nothing may leave the thread unsaid
            self.events.put(("error", f"{type(exc).__name__}: {exc}"))

    def _window(self, concurrency: int, trial: int, window: load.Window) -> None:
        self.events.put(("window", (concurrency, trial, window)))

    def run(self, on_window, on_point, should_stop, beat) -> str:
        """Start, follow to the end (follow()), and see the thread gone."""
        self.thread.start()
        try:
            return self.follow(on_window, on_point, should_stop, beat)
        finally:
            self.stop.set()
            self.thread.join(timeout=60)

    def follow(self, on_window, on_point, should_stop, beat) -> str:
        """Handle events until the sweep ends; returns "" or the error."""
        last_beat = 0.0
        while True:
            try:
                kind, value = self.events.get(timeout=LOOK_EVERY)
            except thread_queue.Empty:
                kind, value = None, None
            if kind == "window":
                on_window(*value)
            elif kind == "point":
                on_point(value)
            elif kind == "done":
                return ""
            elif kind == "error":
                self.stop.set()
                return value
            if time.monotonic() - last_beat >= LOOK_EVERY:
                last_beat = time.monotonic()
                beat()
                if should_stop():
                    self.stop.set()


def _claim(test_id: int) -> bool:
    return background_runs.claim(
        LoadTest, test_id, action="loadtest.started", details=lambda test: {"concurrency": test.concurrency}
    )


def _end(test_id: int, status: str, error: str = "") -> None:
    with transaction.atomic():
        test = LoadTest.objects.select_for_update().select_related("deployment__target__environment").get(pk=test_id)
        if test.status != LoadTest.Status.RUNNING:
            return  # the reconciler took it for lost meanwhile: its word stands
        test.status, test.error, test.ended_at = status, error, timezone.now()
        test.progress = {**test.progress, "current": None}
        test.save(update_fields=["status", "error", "ended_at", "progress"])
        audit(
            action=f"loadtest.{status}",
            obj=test,
            details={
                "points": len(test.points),
                "requests": test.requests_sent,
                "best_throughput": max((p["throughput"] for p in test.points), default=None),
                **({"reason": error} if error else {}),
            },
        )


def run_load_test(test_id: int) -> None:
    if not _claim(test_id):
        return  # a second delivery, or cancelled before it started
    test = LoadTest.objects.select_related("deployment__target__environment").get(pk=test_id)
    try:
        target, serving = endpoint.target_for(test)
    except DomainError as exc:
        _end(test_id, LoadTest.Status.FAILED, exc.message)
        return
    except Exception as exc:
        # Not left running until the reconciler takes it for lost: say what broke now.
        log.exception("load test %s: building its request failed", test_id)
        _end(test_id, LoadTest.Status.FAILED, f"could not build the request: {type(exc).__name__}: {exc}")
        return
    LoadTest.objects.filter(pk=test_id).update(
        endpoint_deployment=serving, spec_digest=test.deployment.spec_digest or ""
    )
    bounds = load.Bounds(max_requests=test.max_requests, deadline=time.monotonic() + test.max_seconds)
    sweep = Sweep(target, method_of(test), test.concurrency, bounds)
    state = {"points": [], "windows": [], "requests": 0, "cancelled": False}

    def on_window(concurrency: int, trial: int, window: load.Window) -> None:
        state["windows"] = [
            *state["windows"][-(PROGRESS_WINDOWS - 1) :],
            {
                "concurrency": concurrency,
                "trial": trial,
                "throughput": round(window.throughput, 2),
                "mean_ms": round(window.mean_ms, 3),
                "errors": window.errors,
            },
        ]
        LoadTest.objects.filter(pk=test_id).update(
            progress={"current": {"concurrency": concurrency, "trial": trial}, "windows": state["windows"]},
            heartbeat_at=timezone.now(),
            requests_sent=bounds.sent,
        )

    def on_point(point: load.Point) -> None:
        state["points"].append(point.as_json())
        state["requests"] += point.requests
        LoadTest.objects.filter(pk=test_id).update(
            points=state["points"], requests_sent=state["requests"], heartbeat_at=timezone.now()
        )

    def should_stop() -> bool:
        state["cancelled"] = LoadTest.objects.filter(pk=test_id, cancel_requested=True).exists()
        return state["cancelled"]

    def beat() -> None:
        LoadTest.objects.filter(pk=test_id, status=LoadTest.Status.RUNNING).update(heartbeat_at=timezone.now())

    error = sweep.run(on_window, on_point, should_stop, beat)
    if error:
        _end(test_id, LoadTest.Status.FAILED, error)
    elif state["cancelled"]:
        _end(test_id, LoadTest.Status.CANCELLED, "cancelled while running; the points measured so far are kept")
    else:
        bounded = next((p["stopped"] for p in state["points"] if p["stopped"]), "")
        note = f"stopped early at {bounded}" if bounded else ""
        _end(test_id, LoadTest.Status.SUCCEEDED, note)


def run(test_id: int) -> None:
    """The Celery task's body: old connections closed around it, as a request's are."""
    close_old_connections()
    try:
        run_load_test(test_id)
    finally:
        connection.close()
