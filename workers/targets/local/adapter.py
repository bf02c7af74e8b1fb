"""The local target: a real Triton Inference Server on this machine, one per
deployment, in its sandbox (sandbox.py), reached through bridges on
127.0.0.1 ports (servers.py says what runs).

Everything about a deployment's server lives in its work folder
(STORAGE_ROOT/deployments/<id>/): `server.json` (pid + start time, ports,
spec digest), `logs/`, and the staged model repository. That file, not the
database and not the worker's memory, says what runs, so a worker or web
restart reattaches instead of starting a second server.
"""

import json
import shutil
import time
from pathlib import Path

import httpx
from django.conf import settings

from workers.targets.base import (
    DeploymentRef,
    DeployResult,
    DeploySpec,
    ModelState,
    Observation,
    Progress,
    TargetAdapter,
    TargetError,
)
from workers.targets.local import entry_scripts, sandbox, servers
from workers.targets.local import processes as local_processes
from workers.targets.local import runtime as triton_runtime
from workers.targets.local import staging as local_staging

_PROBE_TIMEOUT = 3.0
# The record's name for the host port that reaches each server port of the sandbox.
_RECORD_KEYS = {
    sandbox.TRITON_PORT: "http_port",
    sandbox.METRICS_PORT: "metrics_port",
    sandbox.ENTRY_PORT: "entry_port",
}
# Seconds between "still alive" heartbeats while waiting on Triton.
_HEARTBEAT_EVERY = 1.0


def workdir(deployment_id: int) -> Path:
    return Path(settings.STORAGE_ROOT) / "deployments" / str(deployment_id)


def _record_path(deployment_id: int) -> Path:
    return workdir(deployment_id) / "server.json"


def read_record(deployment_id: int) -> dict | None:
    try:
        return json.loads(_record_path(deployment_id).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_record(deployment_id: int, record: dict) -> None:
    path = _record_path(deployment_id)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(path)  # atomic: a reader never sees half a record


def _process(record: dict | None) -> local_processes.ProcessRecord | None:
    if not record or "pid" not in record:
        return None
    return local_processes.ProcessRecord(record["pid"], record["start_ticks"])


def running(record: dict | None) -> bool:
    """The sandbox (its servers end it when one of them ends) and the host's bridges."""
    if not local_processes.is_running(_process(record)):
        return False
    return all(local_processes.is_running(bridge) for bridge in _bridges(record))


def stop_servers(deployment_id: int, progress: Progress = lambda message: None) -> None:
    """Stop the recorded sandbox and bridges and anything else of this
    deployment a dead worker left behind: every process of ours names the
    deployment's folder on its command line (sandbox, script, Triton and its
    Python-backend stubs, entry server, bridges), inside a sandbox too."""
    folder = workdir(deployment_id)
    record = read_record(deployment_id)
    found = [_process(record), *_bridges(record), *local_processes.processes_mentioning(f"{folder}/")]
    alive = [p for p in {p.pid: p for p in found if p is not None}.values() if local_processes.is_running(p)]
    if alive:
        progress(f"Stopping {len(alive)} process(es): pid {', '.join(str(p.pid) for p in alive)}")
    local_processes.stop_all(alive, grace=settings.LOCAL_TRITON_STOP_GRACE)
    _record_path(deployment_id).unlink(missing_ok=True)


def _bridges(record: dict | None) -> list[local_processes.ProcessRecord]:
    return [local_processes.ProcessRecord(b["pid"], b["start_ticks"]) for b in (record or {}).get("bridges", [])]


def _base_url(record: dict) -> str:
    return f"http://127.0.0.1:{record['http_port']}"


def _scoring_uri(record: dict) -> str:
    """Direct Triton: its /v2 base. Entry-script mode: the /score route in front of it."""
    if "entry_port" in record:
        return f"http://127.0.0.1:{record['entry_port']}/score"
    return _base_url(record)


def _repository_index(client: httpx.Client, base: str) -> list[dict]:
    response = client.post(f"{base}/v2/repository/index", json={})
    response.raise_for_status()
    return response.json()


class LocalTarget(TargetAdapter):
    def __init__(self, target=None):
        super().__init__(target)

    def _on_this_host(self) -> None:
        """Servers are processes of one host: another host's worker must never
        start or stop them (operations are routed to the host's queue; this is
        the guard behind that routing)."""
        host = (self.target.settings or {}).get("host") if self.target is not None else None
        if host and host != settings.WORKER_HOST:
            raise TargetError(
                f"target {self.target.name} runs its servers on host {host}; this worker is on {settings.WORKER_HOST}",
                permanent=False,
            )

    # --- deploy ----------------------------------------------------------------

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        self._on_this_host()
        if not settings.LOCAL_TARGET_ENABLED:
            raise TargetError("the local target is switched off here (LOCAL_TARGET_ENABLED=false)", permanent=True)
        if spec.mode == "entry_script":
            entry_scripts.check_packages(spec.pip_packages)
        try:
            runtime = triton_runtime.prepare()
        except triton_runtime.RuntimeUnavailable as exc:
            raise TargetError(f"the local Triton runtime is unavailable: {exc}", permanent=True) from exc
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            raise TargetError(f"the local target cannot sandbox this deployment: {exc}", permanent=True) from exc
        if spec.mode == "entry_script" and not sandbox.enabled():
            # Unsandboxed, localhost:8000 is whatever listens on this host's port 8000.
            raise TargetError(
                "entry-script mode needs the sandbox: a score.py finds its Triton at localhost:8000 inside it, "
                "as on Azure (LOCAL_TARGET_SANDBOX is off)",
                permanent=True,
            )

        folder = workdir(spec.deployment_id)
        folder.mkdir(parents=True, exist_ok=True)
        record = read_record(spec.deployment_id)
        if running(record) and record.get("spec_digest") == spec.spec_digest:
            progress(f"Triton already runs this spec (pid {record['pid']}); reattached, nothing started")
            return DeployResult(scoring_uri=_scoring_uri(record), notes=record.get("notes", []))
        stop_servers(spec.deployment_id, progress)

        models_dir = folder / f"models-{spec.spec_digest[:16]}"
        shutil.rmtree(models_dir, ignore_errors=True)
        progress("Staging the repository for the local CPU-only Triton")
        try:
            notes = local_staging.stage(spec.repository_path, models_dir)
        except (OSError, ValueError) as exc:
            raise TargetError(f"could not stage the repository: {exc}", permanent=True) from exc
        for note in notes:
            progress(note)

        record = self._start(spec, folder, models_dir, runtime, progress)
        record["notes"] = notes
        _write_record(spec.deployment_id, record)
        self._wait_until_loaded(spec.deployment_id, record, progress)
        if spec.mode == "entry_script":
            try:
                entry_scripts.wait_until_serving(
                    f"http://127.0.0.1:{record['entry_port']}/", lambda: running(record), progress
                )
            except TargetError:
                stop_servers(spec.deployment_id, progress)
                raise
        return DeployResult(scoring_uri=_scoring_uri(record), notes=notes)

    def _start(self, spec: DeploySpec, folder: Path, models_dir: Path, runtime, progress: Progress) -> dict:
        """Start the deployment's process tree (sandboxed unless switched off)
        and, for a sandbox, the host's bridges to it; the record to keep."""
        entry = spec.mode == "entry_script"
        sandboxed = sandbox.enabled()
        layout = servers.Layout.for_sandbox(entry) if sandboxed else servers.Layout.on_host()
        box = folder / f"sandbox-{spec.spec_digest[:16]}"
        shutil.rmtree(box, ignore_errors=True)
        scratch, run = box / "scratch", box / "run"
        sandbox.prepare_folders(scratch, run)
        read_only = [*sandbox.python_paths(), runtime.root, models_dir]
        env = {**runtime.environment(), "HOME": str(scratch), "TMPDIR": str(scratch)}
        entry_argv = None
        if entry:
            script = box / "entry" / "score.py"
            script.parent.mkdir()
            script.write_text(spec.entry_script)
            read_only.append(script.parent)
            entry_argv = entry_scripts.command(
                script, port=layout.entry_port, health_port=layout.entry_health_port, worker_count=spec.worker_count
            )
            env.update(
                {
                    "TRITON_URL": f"localhost:{layout.triton_port}",
                    "WORKER_COUNT": str(spec.worker_count),
                    "AZUREML_MODEL_DIR": str(models_dir),
                }
            )
        bridges = {}
        if sandboxed:
            bridges = {
                port: run / name for port, name in sandbox.SOCKETS.items() if entry or port != sandbox.ENTRY_PORT
            }
        start = box / "start.sh"
        start.write_text(
            servers.script(
                triton=runtime.command(models_dir, http_port=layout.triton_port, metrics_port=layout.metrics_port),
                entry=entry_argv,
                bridges=bridges,
            )
        )
        read_only.append(start)
        sandbox.make_readable(models_dir, start, *([script.parent] if entry else []))
        command = sandbox.wrap(
            ["/bin/bash", str(start)],
            read_only=read_only,
            writable=[scratch, run],
            env=env,
            workdir=scratch,
            limits=sandbox.Limits(memory_mb=self._memory_mb()),
        )
        log = folder / "logs" / "triton.log"
        where = "in its sandbox" if sandboxed else "UNSANDBOXED (LOCAL_TARGET_SANDBOX=off)"
        progress(f"Starting tritonserver{' and the entry-script server' if entry else ''} {where}")
        process = local_processes.spawn(command, env={"PATH": "/usr/bin:/bin"}, log=log, cwd=folder)
        record = {
            **process.as_dict(),
            "sandboxed": sandboxed,
            "spec_digest": spec.spec_digest,
            "models_dir": str(models_dir),
            "started_at": time.time(),
            "bridges": [],
        }
        ports = {"http_port": layout.triton_port, "metrics_port": layout.metrics_port, "entry_port": layout.entry_port}
        # The host's side of each bridge: a local TCP port to the sandbox's socket.
        for inside, socket in bridges.items():
            port = local_processes.free_port()
            bridge = local_processes.spawn(
                sandbox.host_bridge(port, socket),
                env={"PATH": "/usr/bin:/bin"},
                log=folder / "logs" / "bridge.log",
                cwd=folder,
            )
            record["bridges"].append(bridge.as_dict())
            ports[_RECORD_KEYS[inside]] = port
        record.update({key: port for key, port in ports.items() if port is not None})
        progress(f"Triton answers on 127.0.0.1:{record['http_port']}")
        return record

    def _memory_hint(self) -> str:
        # An address-space cap shows up as a server that hangs or dies without saying why.
        return (
            f"; the sandbox may use {self._memory_mb()} MB of address space "
            "(the target's memory_limit_mb, else LOCAL_TARGET_MEMORY_MB): raise it if the models need more"
        )

    def _memory_mb(self) -> int:
        settings_of_target = (self.target.settings or {}) if self.target is not None else {}
        return settings_of_target.get("memory_limit_mb") or settings.LOCAL_TARGET_MEMORY_MB

    def _wait_until_loaded(self, deployment_id: int, record: dict, progress: Progress) -> None:
        base, process = _base_url(record), _process(record)
        deadline = time.monotonic() + settings.LOCAL_TRITON_READY_TIMEOUT
        announced, last_beat = False, time.monotonic()
        with httpx.Client(timeout=_PROBE_TIMEOUT) as client:
            while time.monotonic() < deadline:
                if time.monotonic() - last_beat > _HEARTBEAT_EVERY:
                    progress(None)
                    last_beat = time.monotonic()
                if not local_processes.is_running(process):
                    tail = " | ".join(_tail(workdir(deployment_id) / "logs" / "triton.log", 5))
                    raise TargetError(
                        f"tritonserver exited during start-up: {tail}{self._memory_hint()}", permanent=False
                    )
                try:
                    index = _repository_index(client, base)
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if not announced:
                    progress("Triton is up; loading models")
                    announced = True
                failed = [m for m in index if m.get("state") == "UNAVAILABLE"]
                if failed:
                    reasons = "; ".join(f"{m['name']} v{m.get('version', '?')}: {m.get('reason', '')}" for m in failed)
                    stop_servers(deployment_id, progress)
                    raise TargetError(f"Triton could not load {reasons}", permanent=True)
                if index and all(m.get("state") == "READY" for m in index):
                    progress(f"All {len(index)} model version(s) loaded")
                    return
                time.sleep(0.2)
        stop_servers(deployment_id, progress)
        raise TargetError(
            f"models not loaded within {settings.LOCAL_TRITON_READY_TIMEOUT} s (LOCAL_TRITON_READY_TIMEOUT)"
            + self._memory_hint(),
            permanent=False,
        )

    def metrics_url(self, ref: DeploymentRef) -> str:
        record = read_record(ref.id)
        if not record or not record.get("metrics_port"):
            return ""
        return f"http://127.0.0.1:{record['metrics_port']}/metrics"

    def test_connection(self) -> str:
        """The runtime starts, and this host can make the sandbox every deploy needs."""
        self._on_this_host()
        try:
            answer = triton_runtime.smoke_test(triton_runtime.prepare())
            sandbox.check()
        except (triton_runtime.RuntimeUnavailable, sandbox.SandboxUnavailable) as exc:
            raise TargetError(str(exc), permanent=True) from exc
        return answer + ("; sandbox available" if sandbox.enabled() else "; UNSANDBOXED (LOCAL_TARGET_SANDBOX=off)")

    # --- observe ---------------------------------------------------------------

    def status(self, ref: DeploymentRef) -> Observation:
        self._on_this_host()
        record = read_record(ref.id)
        if not local_processes.is_running(_process(record)):
            return Observation(exists=False, detail="no tritonserver process is running")
        if not running(record):
            return Observation(exists=False, detail="a bridge into the sandbox is not running")
        base = _base_url(record)
        observation = Observation(exists=True, spec_digest=record.get("spec_digest", ""))
        try:
            with httpx.Client(timeout=_PROBE_TIMEOUT) as client:
                observation.live = client.get(f"{base}/v2/health/live").status_code == 200
                if "entry_port" in record:
                    entry_live = client.get(f"http://127.0.0.1:{record['entry_port']}/").status_code == 200
                    if not entry_live:
                        observation.detail = "the entry-script server does not answer its health route"
                    observation.live = observation.live and entry_live
                observation.ready = client.get(f"{base}/v2/health/ready").status_code == 200
                for entry in _repository_index(client, base):
                    observation.models.append(
                        ModelState(
                            name=entry["name"],
                            version=str(entry.get("version", "")),
                            ready=entry.get("state") == "READY",
                            reason=entry.get("reason", "")
                            or ("" if entry.get("state") == "READY" else entry.get("state", "")),
                        )
                    )
        except httpx.HTTPError as exc:
            observation.detail = f"probe failed: {type(exc).__name__}"
        return observation

    # --- delete and logs -------------------------------------------------------

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        self._on_this_host()
        stop_servers(ref.id, progress)
        for staged in [*workdir(ref.id).glob("models-*"), *workdir(ref.id).glob("sandbox-*")]:
            shutil.rmtree(staged, ignore_errors=True)
        progress("Server stopped; logs kept")

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        logs = workdir(ref.id) / "logs"
        lines = _tail(logs / "triton.log", tail)
        entry = _tail(logs / "entry.log", tail)
        if entry:
            lines += ["--- entry-script server ---", *entry]
        return lines


def _tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 256 * 1024))
            return handle.read().decode("utf-8", "replace").splitlines()[-count:]
    except FileNotFoundError:
        return []
