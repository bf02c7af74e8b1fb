"""Many simulated Triton endpoints on one loopback port, for the health
poller's tests and benchmark: `http://127.0.0.1:PORT/e/<n>` is endpoint n.

Each answers Triton's health, per-version readiness and repository-index
routes after `latency` seconds (HTTP/1.1 keep-alive), or never, as
configured per endpoint. It is an asyncio server in a thread of its own.
"""

import asyncio
import json
import threading
from dataclasses import dataclass, field


@dataclass
class SimEndpoint:
    hang: bool = False
    live: bool = True
    ready: bool = True
    # version readiness by (model, version); absent = ready
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)
    key: str = ""


class TritonSimulator:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.endpoints: dict[int, SimEndpoint] = {}
        self.requests = 0
        self.unauthorized = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/e/{n}"

    def start(self) -> "TritonSimulator":
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=2048))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        # Wind down: cancel the handlers (hung ones sleep for an hour), close every socket and the loop.
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def _answer(self, method: str, path: str, headers: dict) -> tuple[int, bytes] | None:
        parts = path.split("/")
        if len(parts) < 4 or parts[1] != "e" or not parts[2].isdigit():
            return 404, b"{}"
        endpoint = self.endpoints.get(int(parts[2]), SimEndpoint())
        if endpoint.hang:
            return None
        if endpoint.key and headers.get("authorization") != f"Bearer {endpoint.key}":
            self.unauthorized += 1
            return 401, b'{"error":"unauthorized"}'
        route = "/" + "/".join(parts[3:])
        if route == "/v2/health/live":
            return (200 if endpoint.live else 503), b""
        if route == "/v2/health/ready":
            return (200 if endpoint.ready else 400), b""
        if route.startswith("/v2/models/") and route.endswith("/ready"):
            bits = route.split("/")
            model, version = bits[3], bits[5] if len(bits) > 6 else ""
            return (400 if (model, version) in endpoint.unavailable else 200), b""
        if route == "/v2/repository/index" and method == "POST":
            index = [
                {"name": model, "version": version, "state": "UNAVAILABLE", "reason": reason}
                for (model, version), reason in endpoint.unavailable.items()
            ]
            return 200, json.dumps(index).encode()
        return 404, b"{}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode().split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                if length := int(headers.get("content-length", "0")):
                    await reader.readexactly(length)
                self.requests += 1
                answer = self._answer(method, path, headers)
                if answer is None:
                    await asyncio.sleep(3600)  # never answers: the client's timeout must act
                    break
                if self.latency:
                    await asyncio.sleep(self.latency)
                status, body = answer
                head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def serve_forever(latency: float, hang_every: int, port_file: str) -> None:
    """Entry point for running the simulator in a process of its own (its own
    GIL: in the poller's process it would compete with the probes for CPU)."""
    import time
    from pathlib import Path

    simulator = TritonSimulator(latency=latency)

    class _EveryNth(dict):
        def get(self, n, default=None):
            return SimEndpoint(hang=True) if hang_every and n % hang_every == 0 else default

    simulator.endpoints = _EveryNth()
    simulator.start()
    Path(port_file).write_text(str(simulator.port))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    import sys

    serve_forever(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
