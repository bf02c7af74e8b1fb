"""Prepare the local Triton runtime, or check that it works on this machine."""

import tempfile
import time
from pathlib import Path

import httpx
from django.core.management.base import BaseCommand, CommandError

from workers.targets import local_processes, triton_runtime


class Command(BaseCommand):
    help = "prepare: copy the Triton bundled in nvidia-pytriton into place; check: also start it once and probe it."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["prepare", "check"])

    def handle(self, *args, action, **options):
        try:
            runtime = triton_runtime.prepare()
        except triton_runtime.RuntimeUnavailable as exc:
            raise CommandError(f"local Triton unavailable: {exc}") from exc
        self.stdout.write(f"runtime: {runtime.root}")
        if action == "check":
            self.stdout.write(self._check(runtime))

    def _check(self, runtime) -> str:
        with tempfile.TemporaryDirectory() as empty:
            port = local_processes.free_port()
            log = Path(empty) / "triton.log"
            command = runtime.command(Path(empty), http_port=port, metrics_port=None)
            try:
                process = local_processes.spawn(command, env=runtime.environment(), log=log, cwd=Path(empty))
            except OSError as exc:
                raise CommandError(f"tritonserver did not start: {exc}") from exc
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        server = httpx.get(f"http://127.0.0.1:{port}/v2", timeout=2).json()
                        return f"ok: Triton {server.get('version')} answered on 127.0.0.1:{port}"
                    except httpx.HTTPError:
                        if not local_processes.is_running(process):
                            raise CommandError("tritonserver exited: " + log.read_text()[-2000:]) from None
                        time.sleep(0.2)
                raise CommandError("tritonserver did not answer within 30 s: " + log.read_text()[-2000:])
            finally:
                local_processes.stop(process, grace=5)
