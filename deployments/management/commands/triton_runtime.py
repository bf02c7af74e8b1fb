"""Prepare the local Triton runtime, or check that it works on this machine."""

from django.core.management.base import BaseCommand, CommandError

from workers.targets.local import runtime as triton_runtime


class Command(BaseCommand):
    help = "prepare: copy the Triton bundled in nvidia-pytriton into place; check: also start it once and probe it."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["prepare", "check"])

    def handle(self, *args, action, **options):
        try:
            runtime = triton_runtime.prepare()
            self.stdout.write(f"runtime: {runtime.root}")
            if action == "check":
                self.stdout.write(f"ok: {triton_runtime.smoke_test(runtime)}")
        except triton_runtime.RuntimeUnavailable as exc:
            raise CommandError(f"local Triton unavailable: {exc}") from exc
