"""`make run`'s stack on its embedded defaults: SQLite and the SQLite Celery
broker, with the real web server, worker and beat under supervisord."""

import re
import signal

import httpx
import pytest

from tests import processes

# The whole `make run` stack, with a local Triton behind it.
pytestmark = pytest.mark.triton


@pytest.fixture
def local_env(tmp_path):
    return processes.make_run_env(tmp_path / "var", WORKER_HEARTBEAT_INTERVAL="1")


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    client.get("/login/")
    return client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
    )


def test_make_run_stack_serves_signs_in_and_processes_tasks(local_env, tmp_path):
    assert processes.manage("migrate", "--noinput", env=local_env).returncode == 0
    port = processes.free_port()
    first = processes.manage("bootstrap_demo", "--url", f"http://127.0.0.1:{port}/", env=local_env)
    password = re.search(r"with password: (\S+)", first.stdout).group(1)
    again = processes.manage("bootstrap_demo", env=local_env)
    assert again.returncode == 0
    assert "with password:" not in again.stdout  # printed once only

    stack = processes.start_stack(port=port, env=local_env, log=tmp_path / "stack.log")
    try:
        base = f"http://127.0.0.1:{port}"

        def healthy_with_a_worker():
            return processes.healthy_with_a_worker(base)

        body = processes.wait_for(healthy_with_a_worker, within=120, what="stack healthy", process=stack)
        assert body["broker"] == "ok"
        announced = body["workers"]["last_seen"]

        # A later heartbeat went beat -> SQLite queue -> worker -> SQLite:
        # the whole embedded path, not just the worker's start-up announcement.
        def heartbeat_after_announcement():
            seen = healthy_with_a_worker()
            return seen and seen["workers"]["last_seen"] > announced

        processes.wait_for(heartbeat_after_announcement, within=60, what="beat heartbeat", process=stack)

        with httpx.Client(base_url=base, timeout=10) as client:
            assert sign_in(client, "admin", "wrong-password").status_code == 200
            response = sign_in(client, "admin", password)
            assert response.status_code == 302
            overview = client.get("/")
            assert overview.status_code == 200
            assert "Overview" in overview.text
            assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200
    finally:
        # What Ctrl-C in a terminal does: SIGINT to the whole foreground group.
        code = processes.stop(stack, sig=signal.SIGINT, grace=30)
        print((tmp_path / "stack.log").read_text())
    assert code is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
