"""The load generator's connections: HTTP/1.1, kept alive, one request in
flight each (a closed loop), on asyncio's protocol layer.

Why not aiohttp's client, which this first was: it spent about 220 µs of
CPU per answer here, twice perf_analyzer's, on a 2-core machine where Triton
needs the same cores. Its figures then disagreed with perf_analyzer's on the
same deployment in the same run by a third (bench/loadgen.py). A load
generator's request never changes, so the whole request (line, headers,
body) is bytes built once; what remains per answer is reading a status
line, two headers and a body of known length: a few microseconds of Python.
Responses with Content-Length, chunked, or delimited by the connection's
close are all read; anything the loop cannot read is an error it counts.
"""

import asyncio
import ssl
from urllib.parse import urlsplit


class ResponseError(Exception):
    """The connection broke, or the answer was not HTTP/1.1 as expected."""


def request_bytes(url: str, headers: dict, body: bytes, method: str = "POST") -> tuple[str, int, bool, bytes]:
    """(host, port, tls, the request as sent) for `url`."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or ""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in ("host", "content-length")]
    lines.append(f"Content-Length: {len(body)}")
    return host, port, tls, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Reader(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.body_start = -1
        self.length: int | None = None
        self.chunked = False
        self.until_close = False
        self.keep_alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._complete()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.until_close and self.body_start >= 0:
                self._finish(bytes(self.buffer[self.body_start :]), consumed=len(self.buffer))
            else:
                self.waiter.set_exception(ResponseError(f"the connection closed: {exc or 'by the server'}"))

    def _head(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            self.status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ResponseError(f"not an HTTP status line: {lines[0][:80]!r}") from None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                self.length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                self.chunked = True
            elif name == "connection" and value == "close":
                self.keep_alive = False
        self.until_close = self.length is None and not self.chunked
        if self.until_close:
            self.keep_alive = False
        self.body_start = end + 4
        return True

    def _complete(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        try:
            if self.body_start < 0 and not self._head():
                return
            if self.length is not None:
                end = self.body_start + self.length
                if len(self.buffer) >= end:
                    self._finish(bytes(self.buffer[self.body_start : end]), consumed=end)
            elif self.chunked:
                self._chunks()
        except (ResponseError, ValueError) as exc:
            self.waiter.set_exception(ResponseError(str(exc)))

    def _chunks(self) -> None:
        body, at = bytearray(), self.body_start
        while True:
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return
            size = int(bytes(self.buffer[at:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0 and self.buffer[line_end : line_end + 4] != b"\r\n\r\n":
                    return
                self._finish(bytes(body), consumed=line_end + 4)
                return
            start, end = line_end + 2, line_end + 2 + size
            if len(self.buffer) < end + 2:
                return
            body += self.buffer[start:end]
            at = end + 2

    def _finish(self, body: bytes, *, consumed: int) -> None:
        status = self.status
        del self.buffer[:consumed]
        keep_alive = self.keep_alive
        self._reset()
        if not keep_alive:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.waiter.set_result((status, body))


class Connection:
    """One client's connection, opened again when the server closed it."""

    def __init__(self, url: str, headers: dict, body: bytes = b"", method: str = "POST"):
        self.host, self.port, tls, self.payload = request_bytes(url, headers, body, method)
        self.ssl = ssl.create_default_context() if tls else None
        self.reader: _Reader | None = None

    async def _open(self) -> _Reader:
        loop = asyncio.get_running_loop()
        _, reader = await loop.create_connection(
            _Reader, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
        )
        return reader

    async def send(self, timeout: float) -> tuple[int, bytes]:
        """The request once; (status, body) of its answer."""
        if self.reader is None or self.reader.closed:
            self.reader = await asyncio.wait_for(self._open(), timeout)
        reader = self.reader
        loop = asyncio.get_running_loop()
        reader.waiter = loop.create_future()
        reader.transport.write(self.payload)
        expiry = loop.call_later(timeout, _expire, reader, timeout)
        try:
            return await reader.waiter
        except BaseException:
            # Whatever is still coming on this connection belongs to a request
            # given up on: the next one starts on a new connection.
            self.close()
            raise
        finally:
            expiry.cancel()

    def close(self) -> None:
        if self.reader is not None and self.reader.transport is not None:
            self.reader.transport.close()
        self.reader = None


def _expire(reader: _Reader, timeout: float) -> None:
    if reader.waiter is not None and not reader.waiter.done():
        reader.waiter.set_exception(TimeoutError(f"no answer within {timeout:g} s"))
