"""A deployer's model code runs in the local target's sandbox: it cannot read
the dashboard's files or environment nor reach its ports, and still serves.
With the sandbox switched off the same model does read them, which proves
the probe could have seen a leak."""

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from deployments.models import Operation
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import ROOT
from tests.engine import endpoint_headers, local_target, run_pending

pytestmark = [pytest.mark.django_db, pytest.mark.triton]

PROBE_MODEL = """
import json
import os
import socket

import numpy as np
import triton_python_backend_utils as pb_utils


def attempt(action):
    try:
        return "ok: " + str(action())[:200]
    except Exception as exc:
        return f"refused: {type(exc).__name__}"


def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return "connected"


class TritonPythonModel:
    def initialize(self, args):
        self.targets = json.loads(json.loads(args["model_config"])["parameters"]["targets"]["string_value"])

    def execute(self, requests):
        found = {
            "files": {path: attempt(lambda path=path: open(path).read()) for path in self.targets["files"]},
            "ports": {str(port): attempt(lambda port=port: connect(port)) for port in self.targets["ports"]},
            "environment": sorted(os.environ),
            "uid": os.getuid(),
        }
        answer = np.array([json.dumps(found).encode()], dtype=np.object_)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", answer)]) for _ in requests]
"""


def probe_repository(folder: Path, targets: dict) -> Path:
    model = folder / "probe"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(PROBE_MODEL)
    (model / "config.pbtxt").write_text(
        textwrap.dedent(
            f"""\
            name: "probe"
            backend: "python"
            max_batch_size: 0
            input [{{ name: "IN" data_type: TYPE_INT32 dims: [1] }}]
            output [{{ name: "OUT" data_type: TYPE_STRING dims: [1] }}]
            parameters {{ key: "targets" value {{ string_value: {json.dumps(json.dumps(targets))} }} }}
            """
        )
    )
    return folder


@pytest.fixture
def dashboard_port():
    """Something of the dashboard's listening on the host, as its web server would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def canary(monkeypatch):
    value = secrets.token_hex(16)
    path = Path(settings.VAR_DIR) / "canary-secret"
    path.write_text(value)
    path.chmod(0o600)
    monkeypatch.setenv("DASHBOARD_CANARY", value)
    yield path, value
    path.unlink()


def deploy_probe(admin, tmp_path, targets, cleanup, name):
    folder = probe_repository(tmp_path / name, targets)
    repository = repository_load_example(path=folder, actor=admin).repository
    deployment = deployment_create(name=name, repository=repository, target=local_target(), actor=admin)
    cleanup(deployment)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    body = {"inputs": [{"name": "IN", "shape": [1], "datatype": "INT32", "data": [1]}]}
    answer = httpx.post(
        f"{deployment.scoring_uri}/v2/models/probe/infer", json=body, headers=endpoint_headers(deployment), timeout=30
    )
    answer.raise_for_status()
    return json.loads(answer.json()["outputs"][0]["data"][0])


def test_model_code_reaches_none_of_the_dashboard(admin, tmp_path, canary, dashboard_port, cleanup):
    canary_path, canary_value = canary
    dashboard_files = [canary_path, *[Path(settings.VAR_DIR) / n for n in ("secret_key", "encryption_key")]]
    targets = {
        "files": [str(path) for path in dashboard_files if path.exists()] + ["/etc/shadow"],
        "ports": [dashboard_port, 5432, 6379],
    }
    found = deploy_probe(admin, tmp_path, targets, cleanup, "probe-boxed")
    # It served (the inference above answered), and saw nothing of ours.
    assert set(found["files"]) >= {str(canary_path), "/etc/shadow"}
    assert all(result.startswith("refused:") for result in found["files"].values()), found["files"]
    assert all(result.startswith("refused:") for result in found["ports"].values()), found["ports"]
    leaked = {"DASHBOARD_CANARY", "SECRET_KEY", "ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "VAR_DIR"}
    assert leaked.isdisjoint(found["environment"])
    assert canary_value not in json.dumps(found)
    if os.geteuid() == 0:
        assert found["uid"] == 65534  # nobody, not the dashboard's user


def test_without_the_sandbox_the_same_probe_reads_the_canary(admin, tmp_path, canary, settings, cleanup):
    settings.LOCAL_TARGET_SANDBOX = False
    canary_path, canary_value = canary
    found = deploy_probe(admin, tmp_path, {"files": [str(canary_path)], "ports": []}, cleanup, "probe-open")
    assert found["files"][str(canary_path)] == f"ok: {canary_value}"


def test_a_host_without_user_namespaces_gets_a_refusal_naming_what_is_missing():
    """Produced for real (tests/no_user_namespaces.py), not by patching the detection."""
    if os.geteuid() != 0:
        pytest.skip("needs root to map the namespace's ids")
    check = textwrap.dedent(
        """\
        from django.conf import settings
        settings.configure(LOCAL_TARGET_SANDBOX=True)
        from workers.targets.local import sandbox
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            print("REFUSED", exc)
        else:
            print("ALLOWED")
        """
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.no_user_namespaces", sys.executable, "-c", check],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith("REFUSED"), result.stdout + result.stderr
    assert "unprivileged user namespaces" in result.stdout
    assert "max_*_namespaces exceeded" in result.stdout  # bwrap's own words
    assert "LOCAL_TARGET_SANDBOX=off" in result.stdout


def test_a_socket_swapped_for_a_link_to_a_host_socket_leads_nowhere(tmp_path):
    """The sandbox owns its sockets folder; the host's bridge must not follow
    a link it planted there to one of the host's own sockets."""
    import time

    from workers.targets.local import processes as local_processes
    from workers.targets.local import sandbox

    host_socket = tmp_path / "host-secret.sock"
    with socket.socket(socket.AF_UNIX) as secret:
        secret.bind(str(host_socket))
        secret.listen()
        secret.settimeout(3)
        run = tmp_path / "run"
        run.mkdir()
        (run / "http.sock").symlink_to(host_socket)
        port = local_processes.free_port()
        bridge = local_processes.spawn(
            sandbox.host_bridge(port, run / "http.sock"),
            env={"PATH": "/usr/bin:/bin"},
            log=tmp_path / "b.log",
            cwd=tmp_path,
        )
        try:
            for _ in range(50):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as client:
                        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        client.recv(10)
                    break
                except OSError:
                    time.sleep(0.1)
            with pytest.raises(TimeoutError):
                secret.accept()  # nothing reached the host's socket
        finally:
            # The bridge names its folder (--chdir), not the socket's full path.
            local_processes.stop_all([bridge, *local_processes.processes_mentioning(str(run))], grace=5)


def test_a_sandbox_too_small_for_its_models_says_so(admin, settings, cleanup):
    from deployments.models import Environment
    from deployments.services.targets import target_create
    from tests.archives import EXAMPLES

    settings.LOCAL_TRITON_READY_TIMEOUT = 15
    environment = Environment.objects.create(name="small")
    target = target_create(
        actor=admin, name="small", kind="local", environment=environment, settings={"memory_limit_mb": 600}
    )
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    deployment = deployment_create(name="cramped", repository=repository, target=target, actor=admin)
    cleanup(deployment)
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.QUEUED  # retried: the limit may be raised meanwhile
    assert "the sandbox may use 600 MB of address space" in operation.error
