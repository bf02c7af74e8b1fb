"""gunicorn's settings for the dashboard's web server, in `make run`
(Procfile) and in the container (Dockerfile); the command lines add only
where to listen and how many workers.

No keep-alive: every answer says `Connection: close`. With gunicorn's idle
timeout (2 s by default) a client that reuses a connection just as the server
closes it gets "Connection reset by peer" or "Remote end closed connection
without response"; pipeline scripts polling a deployment every few seconds
(requests.Session) met exactly that. A new connection per request costs a
fraction of a millisecond on the networks the dashboard serves, and a
reverse proxy in front keeps its own client connections.

A reverse proxy put in front (docker-compose's, say) must agree: no
keep-alive to this upstream (nginx: no `keepalive` in the upstream block,
which is its default), or an upstream idle timeout shorter than the
proxy's own, so that it is never the proxy that reuses a connection this
server has just closed. Its client-side keep-alive is its own business.

Slow clients. A gthread worker gives a connection one of its threads from
its first byte until its body is read, and nothing in gunicorn bounds that
time: `timeout` only restarts a worker whose main loop stops (its threads
may wait for ever), and the `limit_request_*` settings bound sizes, not
time. A client sending its headers or its body a byte at a time holds a
thread for as long as it likes; 2 workers x 4 threads are 8 such clients.
The compose stack therefore puts nginx in front (deploy/nginx/), which
waits on slow clients in its event loop and hands over only whole
requests. `make run` listens on 127.0.0.1 only, and here a request's body
must arrive within WEB_BODY_TIMEOUT seconds (plus a second per MiB it
declares) or its read fails and the connection closes (see
docs/facts.md). Slow headers are not bounded here: that is the proxy's job.
"""

import os
import time

keepalive = 0
# Requests in flight get this long to finish when the server stops.
graceful_timeout = 5
accesslog = "-"
# gunicorn's defaults, stated: a request line, header count and header size
# beyond these is refused before the application sees it (nginx in front
# allows the same: large_client_header_buffers 4 8k).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Seconds a request body may take to arrive, plus one per MiB it declares
# (an accepted 4 GiB upload at 1 MiB/s; forms and JSON are at most 4 MiB).
body_timeout = float(os.environ.get("WEB_BODY_TIMEOUT", "30"))
_SECONDS_PER_BYTE = 1 / (1024 * 1024)


class _ReceiveWithDeadline:
    """The socket a request's body is read from (gunicorn's unreader reads
    it with `recv`), whose reads fail with TimeoutError once the body's
    deadline has passed: each may block only for the time that is left.
    Django turns the error into UnreadablePostError, answers, and the
    connection closes. Writing the answer is not bounded by it."""

    def __init__(self, sock, seconds: float):
        self._sock, self._seconds = sock, seconds
        self._deadline = time.monotonic() + seconds

    def recv(self, size):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the request body did not arrive within {self._seconds:.0f} s")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size)
        finally:
            self._sock.settimeout(None)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def pre_request(worker, req):
    unreader = getattr(req, "unreader", None)
    if getattr(unreader, "sock", None) is None:
        return
    declared = 0
    for name, value in req.headers:
        if name == "CONTENT-LENGTH" and value.isdigit():
            declared = int(value)
    unreader.sock = _ReceiveWithDeadline(unreader.sock, body_timeout + declared * _SECONDS_PER_BYTE)
