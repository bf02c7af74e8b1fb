"""Entry-script mode on the local target: the Azure guide's score.py (init()
and run()) served by azureml-inference-server-http, the server Azure ML runs,
in the same sandbox as the deployment's Triton, which it finds at
localhost:8000 as on Azure. Like Azure's AzureML-Triton environment, it sets
no variable naming that address: a script that works here works there."""

import importlib.metadata
import re
import sys
import time
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement

from workers.targets.base import Progress, TargetError
from workers.targets.local.files import tail

_START_TIMEOUT = 60


def check_packages(requirements: list[str]) -> None:
    """The local target installs nothing: a missing or mismatched package is
    reported, never installed behind the user's back."""
    problems = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{line} (not a valid requirement)")
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{line} (not installed)")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{line} (installed: {installed})")
    if problems:
        raise TargetError(
            "pip packages missing on the local target: "
            + "; ".join(problems)
            + ". Install them into the dashboard's environment, or deploy to Azure ML, which builds them in.",
            permanent=True,
        )


def command(script: Path, *, port: int, health_port: int, worker_count: int) -> list[str]:
    """azureml-inference-server-http serving `script` (init() and run()) on `port`."""
    server = Path(sys.executable).with_name("azmlinfsrv")
    return [
        str(server),
        "--entry_script",
        str(script),
        "--port",
        str(port),
        "--health_port",
        str(health_port),
        "--worker_count",
        str(worker_count),
    ]


def wait_until_serving(url: str, alive, progress: Progress, *, log: Path) -> None:
    """Until the entry server answers its health route (GET /); `alive()` says
    whether its process tree still runs, `log` why it ended (init()'s traceback)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise TargetError(exited_message(_last_error(log)), permanent=True)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                progress("Entry script initialised; /score is serving")
                return
        except httpx.HTTPError:
            pass
        progress(None)
        time.sleep(0.3)
    raise TargetError(f"the entry-script server did not answer within {_START_TIMEOUT} s", permanent=False)


def exited_message(error: str) -> str:
    return (
        f"the entry-script server exited (init() failed?): {error}; "
        "the whole traceback is in the server log on the deployment's page"
    )


def raised_in(log: Path) -> str:
    """The last Python exception the log records ("" if none): Triton's own
    lines never read so, an entry script's (or a model's) traceback does."""
    raised = [
        line for line in tail(log, 400) if _RAISED.match(line) and not line.startswith("azureml_inference_server_http")
    ]
    return raised[-1][:500] if raised else ""


def _last_error(log: Path) -> str:
    """The exception init() raised: the last traceback's own line (`ConnectionRefusedError: ...`),
    not the server's wrapper around it."""
    lines = tail(log, 400)
    if not lines:
        return "no log"
    return raised_in(log) or " | ".join(lines[-3:])[:500]


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")
