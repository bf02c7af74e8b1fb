"""Entry-script mode on the local target: the Azure guide's score.py (init()
and run()) served by azureml-inference-server-http, the server Azure ML runs,
in front of the deployment's local Triton (TRITON_URL in its environment)."""

import importlib.metadata
import sys
import time
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement

from workers.targets.base import DeploySpec, Progress, TargetError
from workers.targets.local import processes as local_processes

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


def entry_process(record: dict | None) -> local_processes.ProcessRecord | None:
    if not record or "entry_pid" not in record:
        return None
    return local_processes.ProcessRecord(record["entry_pid"], record["entry_start_ticks"])


def start(spec: DeploySpec, folder: Path, *, triton_url: str, progress: Progress) -> dict:
    entry = folder / "entry"
    entry.mkdir(exist_ok=True)
    script = entry / "score.py"
    script.write_text(spec.entry_script)
    port, health_port = local_processes.free_port(), local_processes.free_port()
    server = Path(sys.executable).with_name("azmlinfsrv")
    command = [
        str(server),
        "--entry_script",
        str(script),
        "--port",
        str(port),
        "--health_port",
        str(health_port),
        "--worker_count",
        str(spec.worker_count),
    ]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(entry),
        "TRITON_URL": triton_url,
        "WORKER_COUNT": str(spec.worker_count),
        "AZUREML_MODEL_DIR": str(folder),
    }
    progress(f"Starting the entry-script server (WORKER_COUNT={spec.worker_count}) on 127.0.0.1:{port}")
    process = local_processes.spawn(command, env=env, log=folder / "logs" / "entry.log", cwd=entry)
    return {"entry_pid": process.pid, "entry_start_ticks": process.start_ticks, "entry_port": port}


def wait_until_serving(record: dict, progress: Progress) -> None:
    process, url = entry_process(record), f"http://127.0.0.1:{record['entry_port']}/"
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not local_processes.is_running(process):
            raise TargetError("the entry-script server exited; see its log (init() failed?)", permanent=True)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                progress("Entry script initialised; /score is serving")
                return
        except httpx.HTTPError:
            pass
        progress(None)
        time.sleep(0.3)
    raise TargetError(f"the entry-script server did not answer within {_START_TIMEOUT} s", permanent=False)
