"""The embedded broker (`make run` without REDIS_URL) hammered by several
producer and consumer processes at once: every message arrives, exactly once,
readable, and no consumer dies."""

import subprocess
import sys
import time

import pytest

from tests import processes

# Real processes, waiting on real time.
pytestmark = pytest.mark.server

PRODUCERS = 4
MESSAGES_EACH = 150
# Consumers that take messages as fast as the transport gives them.
RAW_CONSUMERS = 2
# Seconds without a new message after which the rest are taken as lost
# (the longest countdown is 1 s).
QUIET = 15


def received(out) -> list[tuple[str, int]]:
    lines = [line.split() for path in out.glob("*.log") for line in path.read_text().splitlines()]
    return sorted((tag, int(number)) for tag, number, _ in lines)


def errors_in(out) -> str:
    return "\n".join(path.read_text() for path in sorted(out.glob("*.errors")))


def test_the_embedded_broker_delivers_every_message_once_to_concurrent_consumers(tmp_path):
    out = tmp_path / "received"
    out.mkdir()
    env = processes.make_run_env(tmp_path / "var", STRESS_OUT=str(out))
    # The worker records its start in the database, as the dashboard's do.
    assert processes.manage("migrate", "--noinput", env=env).returncode == 0
    queues = subprocess.run(
        [sys.executable, "-c", "from tests.broker_stress import queues; print(','.join(queues()))"],
        cwd=processes.ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert queues.startswith("notifications,operations,periodic,host.")
    # The raw consumers leave "periodic" (beat's queue) to the real worker.
    consumers = [
        processes.start(
            [sys.executable, "-m", "tests.broker_stress", "consume", "periodic"],
            env=env,
            log=tmp_path / f"consumer{index}.log",
        )
        for index in range(RAW_CONSUMERS)
    ]
    # And a real Celery worker as the dashboard runs them (prefork, acks_late,
    # prefetch 1), which also holds the countdown tasks until they are due.
    consumers.append(
        processes.start(
            [
                *["celery", "-A", "tests.broker_stress", "worker", "--concurrency", "2", "-l", "INFO"],
                *["--hostname", "stress@%h", "--queues", queues],
            ],
            env=env,
            log=tmp_path / f"consumer{RAW_CONSUMERS}.log",
        )
    )
    producers = [
        processes.start(
            [sys.executable, "-m", "tests.broker_stress", f"p{index}", str(MESSAGES_EACH)],
            env=env,
            log=tmp_path / f"producer{index}.log",
        )
        for index in range(PRODUCERS)
    ]
    expected = sorted((f"p{index}", number) for index in range(PRODUCERS) for number in range(MESSAGES_EACH))
    try:
        for index, producer in enumerate(producers):
            assert producer.wait(300) == 0, (tmp_path / f"producer{index}.log").read_text()[-3000:]
        # Until every message is in, a consumer has died or met an error, or
        # nothing more has come for a while (a lost message never will).
        seen, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < QUIET:
            count = len(received(out))
            if count >= len(expected) or any(c.poll() is not None for c in consumers) or errors_in(out):
                break
            if count != seen:
                seen, last_change = count, time.monotonic()
            time.sleep(0.5)
        alive = [consumer.poll() is None for consumer in consumers]
    finally:
        (out / "stop").touch()
        for consumer in consumers:
            processes.stop(consumer)
    logs = "\n".join(path.read_text() for path in sorted(tmp_path.glob("consumer*.log")))
    errors = errors_in(out)
    assert all(alive), f"a consumer died:\n{logs[-6000:]}"
    assert "Unrecoverable error" not in logs, logs[-6000:]
    assert errors == "", f"{errors.count('Traceback')} errors, the last:\n{errors[-3000:]}"
    assert received(out) == expected
