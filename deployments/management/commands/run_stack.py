"""Run `make run`'s processes (the Procfile's) under supervisord, in the
foreground: a process that dies is started again, with a back-off if it
keeps dying at start, and the others go on (honcho, which ran them before,
stopped them all when one died). Ctrl-C stops everything; every process's
output goes to this terminal.

The Procfile stays the one list of the processes: supervisord's
configuration is written from it at every start, to VAR_DIR/supervisord.conf.
"""

import getpass
import os
import shlex
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# A process that stays up this long has started; one that dies sooner is
# started again after 1 s, then 2 s, 3 s... and given up (FATAL, in the log)
# after this many tries in a row, about a minute of trying.
START_SECONDS = 5
START_RETRIES = 10
# What a process gets to finish after SIGTERM (Ctrl-C) before SIGKILL.
STOP_SECONDS = 10
# As honcho gave them: the first process gets --port, the next port + 100, ...
PORT_STEP = 100


def read_procfile(path: Path) -> list[tuple[str, str]]:
    """The (name, command) pairs of a Procfile, in order."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().replace("_", "").replace("-", "").isalnum() or not command.strip():
            raise CommandError(f"{path}:{number}: expected 'name: command', found {line!r}")
        entries.append((name.strip(), command.strip()))
    if not entries:
        raise CommandError(f"{path} names no process")
    return entries


def _value(text: str) -> str:
    # supervisord expands %(name)s in its values: a literal % is written %%.
    return text.replace("%", "%%")


def supervisord_config(*, procfile: list[tuple[str, str]], port: int, var_dir: Path, root: Path) -> str:
    lines = [
        "[supervisord]",
        "nodaemon=true",
        # In the foreground it writes its own lines (started, exited, FATAL)
        # to the terminal already, beside the processes' output.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={_value(str(var_dir / 'supervisord.pid'))}",
        # No privileges to drop: it runs the processes as whoever starts it.
        f"user={_value(getpass.getuser())}",
        "",
    ]
    for index, (name, command) in enumerate(procfile):
        lines += [
            f"[program:{name}]",
            # Through a shell, as honcho did: the Procfile uses ${VAR:-default} and $(...).
            f"command={_value(shlex.join(['/bin/sh', '-c', f'exec {command}']))}",
            f"directory={_value(str(root))}",
            f'environment=PORT="{port + PORT_STEP * index}",PYTHONUNBUFFERED="1"',
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            # To the process alone, which stops its own children (gunicorn's and
            # Celery's workers); a SIGKILL, when it comes to that, to them all.
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_SECONDS}",
            "killasgroup=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
            "redirect_stderr=true",
            "",
        ]
    # One group, so that they are stopped together rather than one after another.
    lines += ["[group:dashboard]", f"programs={','.join(name for name, _ in procfile)}", ""]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Run the Procfile's processes under supervisord in the foreground (what `make run` does)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="the web server's port (default 8000)")
        parser.add_argument("--procfile", default=str(settings.BASE_DIR / "Procfile"))

    def handle(self, *args, port, procfile, **options):
        procfile_path = Path(procfile)
        if not procfile_path.is_file():
            raise CommandError(f"no Procfile at {procfile_path}")
        supervisord = shutil.which("supervisord", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        if supervisord is None:
            raise CommandError("supervisord not found: run `make install`")
        var_dir = Path(settings.VAR_DIR)
        config = var_dir / "supervisord.conf"
        config.write_text(
            supervisord_config(
                procfile=read_procfile(procfile_path), port=port, var_dir=var_dir, root=Path(settings.BASE_DIR)
            )
        )
        self.stdout.flush()
        # supervisord replaces this process: Ctrl-C and SIGTERM reach it directly.
        os.execv(supervisord, [supervisord, "--configuration", str(config)])  # noqa: S606 - no shell wanted
