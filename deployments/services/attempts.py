"""One attempt at an operation, fenced and heartbeating.

An operation's `attempts` counter is the fencing token: a worker claims the
row by raising it, and every write it makes afterwards is conditional on the
row still being RUNNING at that number. When the reconciler re-drives an
operation whose heartbeat stopped, the next claim raises the number, so a
worker that was only slow (not dead) finds its writes refused and stops at
its next step instead of overwriting the newer attempt's outcome.

While the attempt runs, a thread beats the heartbeat four times per
OPERATION_STALE_AFTER, so a blocking call (a model upload, an
SDK's own retries, a long-running operation's wait) never looks like a dead
worker, however long it takes.
"""

import contextlib
import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from deployments.models import Operation

log = logging.getLogger(__name__)
MAX_STEPS = 200


class Superseded(Exception):
    """A newer attempt owns the operation: this one must stop, writing nothing."""


class Attempt:
    def __init__(self, operation_id: int, number: int):
        self.operation_id = operation_id
        self.number = number
        self.superseded = threading.Event()

    def _mine(self):
        return Operation.objects.filter(pk=self.operation_id, attempts=self.number, status=Operation.Status.RUNNING)

    def _lost(self) -> bool:
        """The row is visible and another attempt (or an outcome) owns it.
        A row this connection cannot see yet is not a lost claim."""
        row = Operation.objects.filter(pk=self.operation_id).values("attempts", "status").first()
        return row is not None and (row["attempts"] != self.number or row["status"] != Operation.Status.RUNNING)

    def step(self, message: str | None) -> None:
        """Record a step (or, with None, only prove the worker is alive).
        Its own short write, outside any long transaction: the page shows it at once."""
        if self.superseded.is_set():
            raise Superseded(f"attempt {self.number} of operation {self.operation_id} was superseded")
        now = timezone.now()
        if message is None:
            written = self._mine().update(heartbeat_at=now)
        else:
            operation = Operation.objects.only("steps").get(pk=self.operation_id)
            steps = [*operation.steps, {"at": now.isoformat(), "message": message[:1000]}][-MAX_STEPS:]
            written = self._mine().update(steps=steps, heartbeat_at=now)
        if not written and self._lost():
            self.superseded.set()
            raise Superseded(f"attempt {self.number} of operation {self.operation_id} was superseded")

    def claim_outcome(self) -> Operation | None:
        """Inside the caller's transaction: the row, locked, if this attempt
        still owns it; None if a newer attempt took over."""
        return self._mine().select_for_update().first()

    @contextlib.contextmanager
    def heartbeating(self):
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(stop,), name=f"heartbeat-{self.operation_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(timeout=10)

    def _beat(self, stop: threading.Event) -> None:
        every = max(0.5, settings.OPERATION_STALE_AFTER / 4)
        try:
            while not stop.wait(every):
                try:
                    if not self._mine().update(heartbeat_at=timezone.now()) and self._lost():
                        log.warning("operation %s: attempt %s was superseded", self.operation_id, self.number)
                        self.superseded.set()
                        return
                except DatabaseError:
                    # The database is away for a moment: the next beat tries again,
                    # and a long silence is what the reaper is for.
                    log.warning("operation %s: heartbeat not written", self.operation_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection
