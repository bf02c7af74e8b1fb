"""The example pipelines' steps (examples/ci/deploy.sh), run with the CLI
installed alone, against `make run`'s live stack with a real Triton; then
what people do next: a second person approves prod, it turns healthy, and
both deployments are deleted, each step with its exit code."""

import json
import os
import re
import subprocess
import threading

import pytest

from tests import processes

pytestmark = pytest.mark.triton

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def install_the_cli_alone(where) -> str:
    """A fresh virtual environment with the CLI and its own few dependencies
    (at the lock's versions), as a pipeline installs it: not the dashboard's."""
    uv = str(processes.VENV_BIN / "uv")
    subprocess.run([uv, "venv", "-q", "--python", str(processes.VENV_BIN / "python"), str(where)], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(where / "bin" / "python"), "./cli", "-c", "requirements/app.lock"],
        cwd=processes.ROOT,
        check=True,
    )
    return f"{where / 'bin'}:{SYSTEM_PATH}"


@pytest.fixture
def stack(tmp_path, tmp_path_factory, settings):
    # A short folder: HAProxy's master socket goes in it, and a socket's path
    # has 97 bytes at most (the test's own folder is too deep under xdist).
    var = tmp_path_factory.mktemp("var")
    # The health poller's round, so that a new deployment is seen healthy soon.
    env = processes.make_run_env(var, HEALTH_POLL_INTERVAL="2")
    assert processes.manage("migrate", "--noinput", env=env).returncode == 0
    port = processes.free_port()
    assert processes.manage("bootstrap_demo", "--url", f"http://127.0.0.1:{port}/", env=env).returncode == 0
    # As `make run` does before it starts the stack.
    assert processes.manage("triton_runtime", "prepare", env=env).returncode == 0
    tokens = {
        user: processes.manage("create_api_token", user, "--scope", "deploy", env=env).stdout.strip().splitlines()[-1]
        for user in ("admin", "approver")
    }
    server = processes.start_stack(port=port, env=env, log=tmp_path / "stack.log")
    base = f"http://127.0.0.1:{port}"

    # The stack's local endpoints live in its storage root: stopped there when the test ends.
    settings.STORAGE_ROOT = var / "storage"
    try:
        processes.wait_for(
            lambda: processes.healthy_with_a_worker(base), within=120, what="the stack answers", process=server
        )
        yield base, tokens
    finally:
        processes.stop(server, grace=30)
        print((tmp_path / "stack.log").read_text()[-8000:])
        from workers.targets.local import adapter as local

        for folder in (settings.STORAGE_ROOT / "deployments").glob("*"):
            if folder.name.isdigit():
                local.stop_servers(int(folder.name))


def test_the_example_pipeline_then_approval_and_deletes(stack, tmp_path):
    base, tokens = stack
    path = install_the_cli_alone(tmp_path / "cli-venv")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DASHBOARD_", "DJANGO"))}

    def run(args, as_user="admin", wait=True, **extra):
        env = {**clean, "PATH": path, "DASHBOARD_URL": base, "DASHBOARD_TOKEN": tokens[as_user], **extra}
        process = subprocess.Popen(
            args, cwd=processes.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if not wait:
            return process
        out, err = process.communicate(timeout=900)
        print(f"$ {' '.join(args)}\n{out}{err}-> {process.returncode}")
        return process.returncode, out, err

    code, out, err = run(
        ["bash", "examples/ci/deploy.sh"],
        MODEL_REPOSITORY="examples/model_repositories/add_sub",
        DEPLOYMENT_NAME="ci-add-sub",
        STAGING_TARGET="local-staging",
        PROD_TARGET="local-prod",
        INFER_BODY="examples/ci/add_sub_request.json",
    )
    assert code == 0, err
    staging = int(re.search(r"deployment (\d+) is healthy on local-staging", out).group(1))
    assert "OUTPUT0 FP32 [4]: [11.0, 22.0, 33.0, 44.0]" in out
    assert "OUTPUT1 FP32 [4]: [-9.0, -18.0, -27.0, -36.0]" in out
    prod = int(re.search(r"deployment (\d+) requested on local-prod: pending_approval", out).group(1))
    assert "healthy" in err  # --wait's progress lines

    triton_dashboard = "triton-dashboard"
    code, _, err = run([triton_dashboard, "approve", str(prod)])
    assert code == 4  # four eyes: not the requester
    assert "someone else" in err
    code, out, _ = run([triton_dashboard, "approve", str(prod), "--comment", "staging answered"], as_user="approver")
    assert code == 0
    assert "approval approved" in out
    code, out, _ = run([triton_dashboard, "--json", "status", str(prod), "--wait"])
    assert code == 0
    assert json.loads(out)["status"] == "healthy"

    code, out, _ = run([triton_dashboard, "delete", str(staging), "--wait"])
    assert code == 0
    assert "deleted" in out
    # prod deletes need approval too: the requester's --wait follows the request to the end.
    waiting = run([triton_dashboard, "delete", "ci-add-sub", "--wait", "--interval", "0.5"], wait=False)
    progress: list[str] = []
    reader = threading.Thread(target=lambda: progress.extend(waiting.stderr), daemon=True)
    reader.start()
    # Approved only once the waiting CLI has said what it waits for.
    processes.wait_for(
        lambda: any("its delete waits for approval: 0/1" in line for line in progress),
        within=60,
        what="the delete waits for its approval",
        process=waiting,
    )
    code, _, _ = run([triton_dashboard, "approve", str(prod)], as_user="approver")
    assert code == 0
    with waiting:  # closes its pipes
        out = waiting.stdout.read()
        waiting.wait(timeout=600)
        reader.join(timeout=10)
    print(out, "".join(progress))
    assert waiting.returncode == 0, progress
    assert f"deployment {prod} ci-add-sub on local-prod: deleted" in out
