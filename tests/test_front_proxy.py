"""A front that slow clients cannot starve (issue 17, finding 4).

Twenty clients that send their request one byte every 2 s (half of them
the headers, half a POST /login/ body) hold the web server's threads when
they reach gunicorn directly. Through the compose stack's nginx (its
configuration run here by Debian's nginx, tests/front_proxy.py) they wait
at the proxy, and every /api/v1/health request is answered meanwhile. The
web server on its own (`make run`) ends a body that does not arrive in
time. Latency under attack is measured in bench/slow_clients.py, not here.
"""

import socket
import threading
import time

import pytest
import requests

from tests import front_proxy, processes
from tests.test_upload_limits import TOTAL, MiB, Server, post_streaming, with_users

pytestmark = pytest.mark.server

SLOW_CLIENTS = 20
# Generous: a bound on a hung run, not a speed requirement.
HEALTH_TIMEOUT = 10
CSRF_COOKIE = "a" * 32


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root = tmp_path_factory.mktemp("front")
    env = processes.make_run_env(root / "var", WEB_BODY_TIMEOUT="3", TMPDIR=str(root))
    tokens = with_users(env)
    server, _, port = processes.start_web(env=env, log=root / "web.log")
    yield port, root, tokens
    processes.stop(server)


@pytest.fixture(scope="module")
def proxy(web):
    web_port, _, _ = web
    port = processes.free_port()
    nginx, folder = front_proxy.start(upstream=f"127.0.0.1:{web_port}", port=port)
    base = f"http://127.0.0.1:{port}"
    processes.wait_for(lambda: processes.answers_health(base), within=30, what="nginx answers", process=nginx)
    yield port, folder
    front_proxy.stop(nginx, folder)


class SlowClient(threading.Thread):
    """Sends a request one byte every `interval` seconds: the headers (a
    slow-headers client), or quick headers and then a slow body."""

    def __init__(self, port: int, *, slow_headers: bool, interval: float = 2.0):
        super().__init__(daemon=True)
        self.port, self.slow_headers, self.interval = port, slow_headers, interval
        self.stop, self.sent, self.ended = threading.Event(), 0, None

    def run(self):
        head = (
            f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            # A well-formed CSRF cookie makes the CSRF check read the body (without one it refuses unread).
            f"Cookie: csrftoken={CSRF_COOKIE}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            try:
                if self.slow_headers:
                    trickle, quick = head, b""
                else:
                    trickle, quick = b"username=" + b"x" * 9991, head
                sock.sendall(quick)
                for byte in trickle:
                    if self.stop.wait(self.interval):
                        return
                    sock.sendall(bytes([byte]))
                    self.sent += 1
            except OSError as exc:
                self.ended = exc


def under_attack(port: int) -> list[SlowClient]:
    clients = [SlowClient(port, slow_headers=i % 2 == 0) for i in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    # Every one of them connected and sending.
    processes.wait_for(lambda: all(c.sent >= 2 for c in clients), within=30, what="the slow clients are sending")
    return clients


def health_checks(port: int, count: int = 10) -> list[str]:
    failures = []
    for _ in range(count):
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=HEALTH_TIMEOUT)
            if answer.status_code != 200:
                failures.append(f"{answer.status_code}")
        except requests.RequestException as exc:
            failures.append(repr(exc))
        time.sleep(1)
    return failures


def test_twenty_slow_clients_through_the_proxy_do_not_starve_the_health_check(proxy):
    port, _ = proxy
    clients = under_attack(port)
    try:
        failures = health_checks(port)
        bodies = [c for c in clients if not c.slow_headers]
        # The attack lasted through every check: the slow bodies are still being taken, a byte at a time.
        still_sending = [c for c in bodies if c.ended is None and c.is_alive()]
        # Headers must arrive whole within client_header_timeout: the proxy lets those clients go.
        headers = [c for c in clients if c.slow_headers]
        processes.wait_for(lambda: all(c.ended or not c.is_alive() for c in headers), within=60, what="headers end")
    finally:
        for client in clients:
            client.stop.set()
    assert failures == []
    assert len(still_sending) == len(bodies)


def test_the_web_server_alone_ends_a_body_that_does_not_arrive_in_time(web):
    """`make run` has no proxy: gunicorn itself must let go of a trickling body
    (WEB_BODY_TIMEOUT is 3 s here)."""
    port, _, _ = web
    client = SlowClient(port, slow_headers=False, interval=0.5)
    client.start()
    # 10,000 bytes at one every 0.5 s would take 80 minutes; `within` only bounds a hung run.
    processes.wait_for(lambda: client.ended is not None or not client.is_alive(), within=60, what="the server ends it")
    client.stop.set()
    assert client.sent < 10000


def test_an_anonymous_upload_through_the_proxy_is_not_buffered_to_disk(proxy, web):
    """The proxy buffers request bodies (that is what shields the web server
    from slow ones), so it must not take an upload that the dashboard would
    refuse: it asks the dashboard first, from the headers."""
    port, folder = proxy
    _, web_root, _ = web
    session = requests.Session()
    session.get(f"http://127.0.0.1:{port}/login/", timeout=10)
    server = Server(f"http://127.0.0.1:{port}", port, [folder, web_root], "", "")
    outcome = post_streaming(
        server,
        "/repositories/upload/",
        headers={"Cookie": f"csrftoken={session.cookies['csrftoken']}"},
        fields={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
    )
    assert outcome.written <= 1 * MiB, f"{outcome.written / MiB:.0f} MiB written before the refusal"
    assert outcome.sent < TOTAL
    assert outcome.status in (None, 401)


def test_a_deployer_uploads_through_the_proxy_and_a_viewer_is_refused_there(proxy, web):
    from tests import archives

    port, _ = proxy
    _, _, tokens = web
    archive = archives.make_zip(archives.add_sub_files())

    def upload(token: str):
        return requests.post(
            f"http://127.0.0.1:{port}/api/v1/repositories",
            headers={"Authorization": f"Token {token}"},
            files={"archive": ("add_sub.zip", archive, "application/zip")},
            data={"name": "add-sub"},
            timeout=60,
        )

    assert upload(tokens["viewer"]).status_code == 403
    recorded = upload(tokens["deployer"])
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["name"] == "add-sub"
    # Reads pass the preflight untouched.
    viewer = {"Authorization": f"Token {tokens['viewer']}"}
    listed = requests.get(f"http://127.0.0.1:{port}/api/v1/repositories", headers=viewer, timeout=10)
    assert [r["name"] for r in listed.json()["results"]] == ["add-sub"]
