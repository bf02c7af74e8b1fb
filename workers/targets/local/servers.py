"""What runs for one local deployment, as one process tree: a bash script
(start.sh in the deployment's sandbox folder) that starts the bridges, Triton
and, in entry-script mode, the entry server, and ends as soon as any of them
ends. So a server that dies takes its sandbox with it, and the reconciler
sees "not running" and restarts the whole deployment.
"""

import shlex
from dataclasses import dataclass
from pathlib import Path

from workers.targets.local import processes as local_processes
from workers.targets.local import sandbox


@dataclass(frozen=True)
class Layout:
    """Where a deployment's servers listen: inside the sandbox (fixed, as on
    Azure) or, with the sandbox off, on free host ports."""

    triton_port: int
    metrics_port: int
    entry_port: int | None
    entry_health_port: int | None

    @classmethod
    def for_sandbox(cls, entry: bool) -> "Layout":
        ports = (sandbox.ENTRY_PORT, sandbox.ENTRY_HEALTH_PORT) if entry else (None, None)
        return cls(sandbox.TRITON_PORT, sandbox.METRICS_PORT, *ports)

    @classmethod
    def on_host(cls) -> "Layout":
        """Unsandboxed: Triton only (entry scripts need the sandbox's localhost:8000)."""
        return cls(local_processes.free_port(), local_processes.free_port(), None, None)


def _line(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(part)) for part in argv)


def script(*, triton: list[str], entry: list[str] | None, bridges: dict[int, Path]) -> str:
    """bridges: in-sandbox port -> the Unix socket the host reaches it by."""
    lines = [
        "#!/bin/bash",
        "# Written by Triton Dashboard: this deployment's servers. When one ends, all end.",
        "set -u",
        "trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM INT",
    ]
    for port, socket in bridges.items():
        # By its name, from its folder: a socket's path may be at most 107
        # bytes, which a deep storage root exceeds.
        # socat listens with a backlog of 5 unless told: a client opening
        # more connections at once than that had some refused, and the router
        # answered them 503 (seen at 8 concurrent clients of a load test).
        listen = f"UNIX-LISTEN:{socket.name},fork,unlink-early,mode=0666,backlog={sandbox.BRIDGE_BACKLOG}"
        # Quiet: every probe during start-up would log "connection refused".
        bridge = ["socat", *sandbox.BRIDGE_OPTIONS, listen, f"TCP:127.0.0.1:{port},nodelay"]
        lines.append(f"(cd {shlex.quote(str(socket.parent))} && exec {_line(bridge)}) 2>/dev/null &")
    lines.append(_line(triton) + " &")
    if entry:
        lines.append(_line(entry) + " &")
    lines += ["wait -n", "status=$?", "kill -TERM $(jobs -p) 2>/dev/null", "wait", "exit $status"]
    return "\n".join(lines) + "\n"
