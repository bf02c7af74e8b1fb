"""The web server exactly as `make run` starts it (the Procfile's web line),
polled as a pipeline script polls it: no answer may be lost to a keep-alive
connection closing under the client."""

import time

import pytest
import requests

from tests import processes

pytestmark = pytest.mark.server

# Around gunicorn's default idle timeout (2 s), where a reused connection races its close.
INTERVALS = [0.5, 1.0, 1.5, 1.99, 2.0, 2.01, 2.5, 3.0, 2.0]


@pytest.fixture
def web_server(tmp_path):
    env = processes.make_run_env(tmp_path / "var")
    migrated = processes.manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    server, base, _ = processes.start_web(env=env, log=tmp_path / "web.log")
    yield base
    processes.stop(server)


def test_a_client_polling_at_any_interval_loses_no_answer(web_server):
    session = requests.Session()
    failures = []
    for interval in INTERVALS:
        try:
            answer = session.get(f"{web_server}/api/v1/health", timeout=5)
            assert answer.status_code == 200
            # What makes it safe: the server never keeps a connection a client could reuse as it closes.
            assert answer.headers.get("Connection", "").lower() == "close"
        except requests.ConnectionError as exc:
            failures.append(f"after {interval} s: {exc}")
        time.sleep(interval)
    assert failures == []
