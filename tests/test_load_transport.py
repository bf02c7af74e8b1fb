"""The load generator's HTTP/1.1 connections against a server that answers
as each test scripts it: every way an answer can be delimited, a server that
closes, one that does not answer, and one that says nothing HTTP."""

import asyncio

import pytest

from deployments.loadlab import transport


class Scripted:
    """A server on 127.0.0.1 that answers each request (one read) with the
    next of `answers`; b"" closes the connection; None keeps silent."""

    def __init__(self, answers: list, received: list | None = None):
        self.answers, self.received = answers, received
        self.handlers: list[asyncio.Task] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v2/models/m/infer"

    async def handle(self, reader, writer):
        self.handlers.append(asyncio.current_task())
        try:
            while self.answers:
                request = await reader.read(65536)
                if not request:
                    break
                if self.received is not None:
                    self.received.append(request)
                answer = self.answers.pop(0)
                if answer is None:
                    await asyncio.sleep(5)
                    break
                if answer == b"":
                    break
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        """Every connection closed before the loop ends (an open one warns when collected)."""
        self.server.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()


async def serve(answers: list, *, received: list | None = None):
    scripted = Scripted(answers, received)
    return scripted, await scripted.start()


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_request_is_sent_whole_with_its_headers_and_length_and_kept_alive_for_the_next():
    async def scenario():
        received = []
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        server, url = await serve([ok, ok], received=received)
        connection = transport.Connection(url, {"Authorization": "Bearer k", "Content-Type": "x/y"}, b"BODY")
        first = await connection.send(2)
        second = await connection.send(2)
        connection.close()
        await server.stop()
        return received, first, second

    received, first, second = run(scenario())
    assert first == second == (200, b"hello")
    assert len(received) == 2  # one connection, two requests
    head, _, body = received[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer k" in head
    assert b"Content-Length: 4" in head
    assert body == b"BODY"


def test_chunked_and_close_delimited_answers_are_read_whole():
    async def scenario():
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
        until_close = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<h1>503</h1>"
        server, url = await serve([chunked, until_close])
        connection = transport.Connection(url, {}, b"")
        first = await connection.send(2)
        second = await connection.send(2)
        await server.stop()
        return first, second

    first, second = run(scenario())
    assert first == (200, b"abcde")
    assert second == (503, b"<h1>503</h1>")


def test_a_connection_the_server_closed_is_opened_again_for_the_next_request():
    async def scenario():
        closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        server, url = await serve([closing, closing, closing])
        connection = transport.Connection(url, {}, b"")
        answers = [await connection.send(2) for _ in range(3)]
        await server.stop()
        return answers

    assert run(scenario()) == [(200, b"ok")] * 3


def test_no_answer_in_time_is_a_timeout_and_a_closed_connection_an_error():
    async def scenario():
        server, url = await serve([None])
        connection = transport.Connection(url, {}, b"")
        with pytest.raises(TimeoutError, match=r"no answer within 0\.2 s"):
            await connection.send(0.2)
        await server.stop()
        server, url = await serve([b""])
        connection = transport.Connection(url, {}, b"")
        with pytest.raises(transport.ResponseError, match="connection closed"):
            await connection.send(2)
        await server.stop()
        server, url = await serve([b"SSH-2.0-OpenSSH\r\n\r\n"])
        connection = transport.Connection(url, {}, b"")
        with pytest.raises(transport.ResponseError, match="not an HTTP status line"):
            await connection.send(2)
        await server.stop()

    run(scenario())
