"""Producers and consumers for hammering the embedded broker (the one
`make run` uses when REDIS_URL is unset), each in a process of its own.

- producer: `python -m tests.broker_stress TAG COUNT` sends COUNT tasks named
  stress.record through the dashboard's own Celery app, spread over the
  dashboard's queues (and some with a countdown), as deployments/queue.py
  sends its tasks.
- consumer: `python -m tests.broker_stress consume [QUEUE...]` takes messages
  off every queue but those named as fast as the transport gives them, polling without pause (prefetch 1, acknowledged
  after they are recorded, as the workers' acks_late does), until STRESS_OUT/stop
  exists and the queues are idle; a message it cannot read is counted, not fatal.
- worker: a real Celery worker on this module's app (`celery -A
  tests.broker_stress worker ...`): the dashboard's app and settings with one
  more task, which records what it received.

Each consumer appends "TAG NUMBER" lines to STRESS_OUT/<pid>.log, and the
errors it met to STRESS_OUT/<pid>.errors.
"""

import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

import django

django.setup()

from celery import current_task  # noqa: E402
from django.conf import settings  # noqa: E402

from dashboard.celery import app  # noqa: E402
from deployments import queue  # noqa: E402

__all__ = ["app"]


def queues() -> list[str]:
    """The dashboard's queues: operations, periodic, notifications and this host's."""
    return queue.worker_queues(settings.WORKER_HOST)


PADDING = "x"


def _out(suffix: str) -> Path:
    return Path(os.environ["STRESS_OUT"]) / f"{os.getpid()}.{suffix}"


def _record(tag: str, number: int, via: str) -> None:
    # One short append per message: whole lines, whatever the other consumers do.
    with _out("log").open("a") as handle:
        handle.write(f"{tag} {number} {via}\n")


@app.task(name="stress.record", ignore_result=True)
def record(tag: str, number: int, padding: str = "") -> None:
    _record(tag, number, current_task.request.delivery_info.get("routing_key") or "?")


def produce(tag: str, count: int) -> None:
    names = queues()
    for number in range(count):
        # Every tenth waits a second in the worker first (an ETA task, held unacknowledged).
        countdown = 1 if number % 10 == 0 else None
        # Bodies of every size the dashboard sends, from ids to an e-mail or a webhook's payload.
        args = (tag, number, PADDING * (number % 7) ** 6) if number % 3 == 0 else (tag, number)
        app.send_task("stress.record", args=args, queue=names[number % len(names)], countdown=countdown)


def consume(*, skip: list[str]) -> None:
    stop = Path(os.environ["STRESS_OUT"]) / "stop"

    def on_message(body, message):
        args = body[0] if isinstance(body, list) else body["args"]  # protocol 2 or 1
        if len(args) > 2 and args[2] != PADDING * len(args[2]):
            raise ValueError(f"{args[0]} {args[1]}: its padding arrived changed")
        _record(args[0], args[1], message.delivery_info.get("routing_key") or "?")
        message.ack()

    with app.connection_for_read() as connection:
        # No pause between polls: the most demanding consumer a transport can meet.
        connection.transport.polling_interval = 0
        task_queues = [app.amqp.queues[name] for name in queues() if name not in skip]
        idle = 0
        while idle < 5 or not stop.exists():
            try:
                channel = connection.channel()
                channel.basic_qos(0, 1, False)
                with connection.Consumer(task_queues, channel=channel, callbacks=[on_message], accept=["json"]):
                    while idle < 5 or not stop.exists():
                        try:
                            connection.drain_events(timeout=0.5)
                            idle = 0
                        except TimeoutError:
                            idle += 1
            except Exception:  # what the test counts: an unreadable message, a broker error
                with _out("errors").open("a") as handle:
                    handle.write(traceback.format_exc() + "\n")
                time.sleep(0.1)
                connection.close()
                connection = connection.clone()
                connection.transport.polling_interval = 0


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        consume(skip=sys.argv[2:])
    else:
        produce(sys.argv[1], int(sys.argv[2]))
