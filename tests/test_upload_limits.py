"""Uploads are refused before they are stored (issue 17, finding 3).

A real web server, started as `make run` starts it, receives 300 MiB
streamed from a generator: from an anonymous client (holding only a
csrftoken cookie), from a viewer (signed in, and with a deploy-scoped API
token), and from a deployer over a lowered limit. Each must be refused while
at most 1 MiB lands in the upload folder, the storage root or the server's
temporary folder, and the server must stop reading rather than take the
whole body."""

import contextlib
import os
import re
import select
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import processes
from tests.conftest import PASSWORD

pytestmark = pytest.mark.server

MiB = 1024**2
TOTAL = 300 * MiB
LOWERED_LIMIT = 16 * MiB
# What may land on disk at most while a refused upload is under way.
ALLOWED_ON_DISK = 1 * MiB

# A viewer and a deployer, each with a deploy-scoped token (printed).
USERS = """
from django.contrib.auth.models import Group, User
from deployments.services.api_tokens import api_token_create
for name in ("viewer", "deployer"):
    user = User.objects.create_user(name, password={password!r})
    user.groups.add(Group.objects.get(name=name))
    print(name, api_token_create(user=user, name="upload test", scope="deploy", expires_in_days=7)[1])
"""


def with_users(env: dict[str, str]) -> dict[str, str]:
    """Migrate `env`'s database and create the viewer and the deployer: their tokens by name."""
    migrated = processes.manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    created = processes.manage("shell", "-c", USERS.format(password=PASSWORD), env=env)
    assert created.returncode == 0, created.stderr[-2000:]
    return dict(line.split(" ", 1) for line in created.stdout.strip().splitlines()[-2:])


@dataclass
class Server:
    base: str
    port: int
    folders: list[Path]
    viewer_token: str
    deployer_token: str


def started(tmp_path_factory, **settings: str):
    root = tmp_path_factory.mktemp("uploads")
    temporary = root / "tmp"
    temporary.mkdir()
    env = processes.make_run_env(root / "var", TMPDIR=str(temporary), **settings)
    tokens = with_users(env)
    web, base, port = processes.start_web(env=env, log=root / "web.log")
    # The storage root holds the upload folder (FILE_UPLOAD_TEMP_DIR); TMPDIR is the process's own.
    yield Server(base, port, [root / "var" / "storage", temporary], tokens["viewer"], tokens["deployer"])
    processes.stop(web)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The default limit (4 GiB): the 300 MiB is within it."""
    yield from started(tmp_path_factory)


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    yield from started(tmp_path_factory, REPOSITORY_MAX_UPLOAD_BYTES=str(LOWERED_LIMIT))


def signed_in(server: Server, username: str | None) -> requests.Session:
    """A browser's cookies: a csrftoken from the sign-in page, and a session when a user signs in."""
    session = requests.Session()
    page = session.get(f"{server.base}/login/", timeout=10)
    assert page.status_code == 200
    if username:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = session.post(
            f"{server.base}/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{server.base}/login/"},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302, answer.text[:500]
    return session


class DiskWatch:
    """The most bytes seen at once under some folders, sampled while it runs
    (a refused upload's spool file is removed afterwards, so only the peak
    says what was written)."""

    def __init__(self, folders):
        self.folders, self.peak = folders, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for folder in self.folders:
            for parent, _, names in os.walk(folder):
                for name in names:
                    with contextlib.suppress(FileNotFoundError):  # removed as it was seen
                        total += os.lstat(os.path.join(parent, name)).st_size
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            self._stop.wait(0.02)

    def __enter__(self):
        self.baseline = self._size()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._size())

    @property
    def written(self) -> int:
        return self.peak - self.baseline


@dataclass
class Outcome:
    status: int | None
    sent: int
    written: int


def post_streaming(server: Server, path: str, *, headers: dict, fields: dict) -> Outcome:
    """POST a multipart form whose `archive` is TOTAL zero bytes, streamed a
    MiB at a time from a generator with its Content-Length declared; stop as
    soon as the server answers or closes. The answer, the bytes the server
    took and the peak written to disk."""
    boundary = "----upload-limit-test"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        chunk = bytes(MiB)
        for _ in range(TOTAL // MiB):
            yield chunk
        yield tail

    request = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {len(head) + TOTAL + len(tail)}",
        f"Referer: {server.base}{path}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    sent, answer = 0, b""
    with DiskWatch(server.folders) as disk, socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        try:
            for piece in body():
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # answered (or closed) before the whole body: stop sending
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while b"\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return Outcome(int(status.group(1)) if status else None, sent, disk.written)


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


def assert_refused_early(outcome: Outcome, statuses: set[int]):
    assert outcome.written <= ALLOWED_ON_DISK, f"{outcome.written / MiB:.0f} MiB written before the refusal"
    assert outcome.sent < TOTAL, "the server read the whole body before refusing it"
    # An answer the client got to read before the server closed on it.
    assert outcome.status is None or outcome.status in statuses, outcome


# The sign-in form takes no more than any form (413); the upload page sends strangers to sign in.
@pytest.mark.parametrize(("path", "refusal"), [("/login/", 413), ("/repositories/upload/", 302)])
def test_an_anonymous_upload_is_refused_before_anything_is_stored(server, path, refusal):
    browser = signed_in(server, None)
    outcome = post_streaming(
        server,
        path,
        headers={"Cookie": cookie_header(browser)},
        fields={"csrfmiddlewaretoken": browser.cookies["csrftoken"], "username": "x", "password": "y"},
    )
    assert_refused_early(outcome, {refusal})


def test_a_viewers_upload_on_the_page_is_refused_before_anything_is_stored(server):
    browser = signed_in(server, "viewer")
    outcome = post_streaming(
        server,
        "/repositories/upload/",
        headers={"Cookie": cookie_header(browser), "X-CSRFToken": browser.cookies["csrftoken"]},
        fields={"name": "big"},
    )
    assert_refused_early(outcome, {403})


def test_a_viewers_upload_through_the_api_is_refused_before_anything_is_stored(server):
    outcome = post_streaming(
        server, "/api/v1/repositories", headers={"Authorization": f"Token {server.viewer_token}"}, fields={}
    )
    assert_refused_early(outcome, {403})


def test_an_upload_without_a_valid_token_is_refused_before_anything_is_stored(server):
    outcome = post_streaming(server, "/api/v1/repositories", headers={"Authorization": "Token nonsense"}, fields={})
    assert_refused_early(outcome, {401})


def test_a_deployers_upload_over_the_limit_is_refused_before_anything_is_stored(small_limit_server):
    server = small_limit_server
    browser = signed_in(server, "deployer")
    page = post_streaming(
        server,
        "/repositories/upload/",
        headers={"Cookie": cookie_header(browser), "X-CSRFToken": browser.cookies["csrftoken"]},
        fields={"name": "big"},
    )
    assert_refused_early(page, {413})
    assert page.status == 413, "a declared length over the limit is answered at once"
    api = post_streaming(
        server, "/api/v1/repositories", headers={"Authorization": f"Token {server.deployer_token}"}, fields={}
    )
    assert_refused_early(api, {413})
    assert api.status == 413
