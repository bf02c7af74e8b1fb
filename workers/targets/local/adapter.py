"""The local target: real Triton Inference Servers on this machine, each in
its sandbox (sandbox.py, servers.py), behind an endpoint shaped like an Azure
online endpoint (endpoints.py, router.py): one stable address per dashboard
deployment, and behind it one Triton deployment per spec.

A changed spec starts its Triton beside the running one; once every model
version is ready, the endpoint's traffic moves to it, the router finishes
what the old one was serving, and the old one stops: no request fails and
the address stays.

The records in the deployment's work folder (STORAGE_ROOT/deployments/<id>/),
not the database and not the worker's memory, say what runs, so a worker or
web restart reattaches instead of starting a second server.
"""

import contextlib
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
from workers.targets.local import endpoints, entry_scripts, files, legacy, router, sandbox, servers
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

workdir = endpoints.folder


def _tag(spec_digest: str) -> str:
    """What a server's folders are named by (models-<tag>, sandbox-<tag>)."""
    return spec_digest[:16]


def read_record(deployment_id: int) -> dict | None:
    """The server of the deployment that takes the most traffic."""
    return _main_server(endpoints.read(deployment_id))


def main_deployment(deployment_id: int) -> str:
    return _main_name(endpoints.read(deployment_id))


def _main_name(endpoint: endpoints.EndpointRecord | None) -> str:
    if endpoint is None or not endpoint.traffic:
        return ""
    return max(sorted(endpoint.traffic), key=lambda name: endpoint.traffic[name])


def _main_server(endpoint: endpoints.EndpointRecord | None) -> dict | None:
    name = _main_name(endpoint)
    return endpoints.read_server(endpoint.deployment_id, name) if name else None


def _process(record: dict | None) -> local_processes.ProcessRecord | None:
    if not record or "pid" not in record:
        return None
    return local_processes.ProcessRecord(record["pid"], record["start_ticks"])


def running(record: dict | None) -> bool:
    """The sandbox (its servers end it when one of them ends) and the host's bridges."""
    if not local_processes.is_running(_process(record)):
        return False
    return all(local_processes.is_running(bridge) for bridge in _bridges(record))


def _markers(deployment_id: int, spec_digest: str | None) -> list[str]:
    """What every process of a server names on its command line (sandbox,
    script, Triton and its Python-backend stubs, entry server, bridges): its
    folders, or, for all servers of a deployment, the deployment's folder."""
    folder = workdir(deployment_id)
    if spec_digest is None:
        return [f"{folder}/"]
    if not spec_digest:
        return []  # a record that names no spec: only its recorded processes
    return [f"{folder}/sandbox-{_tag(spec_digest)}", f"{folder}/models-{_tag(spec_digest)}"]


def _stop(records: list[dict | None], markers: list[str], progress: Progress) -> None:
    bridges = [bridge for record in records for bridge in _bridges(record)]
    # A bridge's bwrap passes no TERM on to its socat: both would wait out the
    # grace for their KILL, so its socat hears the TERM itself.
    found = [*(_process(record) for record in records), *bridges, *local_processes.descendants(bridges)]
    for marker in markers:
        found += local_processes.processes_mentioning(marker)
    alive = [p for p in {p.pid: p for p in found if p is not None}.values() if local_processes.is_running(p)]
    if alive:
        progress(f"Stopping {len(alive)} process(es): pid {', '.join(str(p.pid) for p in alive)}")
    local_processes.stop_all(alive, grace=settings.LOCAL_TRITON_STOP_GRACE)


def stop_server(deployment_id: int, name: str, spec_digest: str, progress: Progress = lambda message: None) -> None:
    """Stop one Triton deployment of the endpoint, and what a dead worker left of it."""
    _stop([endpoints.read_server(deployment_id, name)], _markers(deployment_id, spec_digest), progress)
    endpoints.server_path(deployment_id, name).unlink(missing_ok=True)


def stop_servers(deployment_id: int, progress: Progress = lambda message: None) -> None:
    """Stop every server of the deployment (the endpoint keeps its address)."""
    records = endpoints.servers(deployment_id)
    _stop(list(records.values()), _markers(deployment_id, None), progress)
    for name in records:
        endpoints.server_path(deployment_id, name).unlink(missing_ok=True)


def _bridges(record: dict | None) -> list[local_processes.ProcessRecord]:
    return [local_processes.ProcessRecord(b["pid"], b["start_ticks"]) for b in (record or {}).get("bridges", [])]


def _base_url(record: dict) -> str:
    """The server itself (through its bridge), for the dashboard's own probes."""
    return f"http://127.0.0.1:{record['http_port']}"


def scoring_uri(endpoint: endpoints.EndpointRecord, record: dict | None) -> str:
    """Direct Triton: the endpoint's address (its /v2 API). Entry-script mode:
    the /score route in front of it, as on Azure."""
    if record and record.get("mode") == "entry_script":
        return f"{endpoint.address}/score"
    return endpoint.address


def _repository_index(client: httpx.Client, base: str) -> list[dict]:
    response = client.post(f"{base}/v2/repository/index", json={})
    response.raise_for_status()
    return response.json()


def _endpoint_of(deployment_id: int, *, auth: bool) -> endpoints.EndpointRecord:
    """The deployment's endpoint, created on its first deploy (open or keyed as
    `auth` says); a deployment running from before endpoints existed is moved
    behind one (legacy.py)."""
    return (
        endpoints.read(deployment_id)
        or legacy.move_behind_endpoint(deployment_id)
        or endpoints.create(deployment_id, auth=auth)
    )


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

    def _check_host(self, spec: DeploySpec):
        """The runtime, and the isolation this spec needs; the runtime to run."""
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
        return runtime

    def deploy(self, spec: DeploySpec, progress: Progress) -> DeployResult:
        self._on_this_host()
        runtime = self._check_host(spec)
        endpoint = _endpoint_of(spec.deployment_id, auth=spec.auth_enabled)
        name = endpoints.deployment_name(spec.spec_digest)
        record = endpoints.read_server(spec.deployment_id, name)
        if running(record):
            progress(f"Triton deployment {name} already runs this spec (pid {record['pid']}); reattached")
        else:
            record = self._start_deployment(spec, name, runtime, progress)
        # A candidate joins an endpoint that already serves; anything else takes it over.
        if not (spec.candidate and any(endpoint.traffic.values())):
            self._take_all_traffic(endpoint, name, spec.auth_enabled, progress)
            progress(f"Endpoint {endpoint.address}: {name} takes 100% of the traffic")
        elif name not in endpoint.traffic:
            endpoint.traffic[name] = 0
            endpoints.write(endpoint)
            endpoints.publish()
            progress(f"Endpoint {endpoint.address}: {name} runs beside the others at 0%; shift traffic when ready")
        return DeployResult(scoring_uri=scoring_uri(endpoint, record), notes=record.get("notes", []))

    def _start_deployment(self, spec: DeploySpec, name: str, runtime, progress: Progress) -> dict:
        """Stage, start and wait until every model version is ready (and the
        entry server answers); the server's record, written."""
        stop_server(spec.deployment_id, name, spec.spec_digest, progress)  # what a dead worker left of it
        folder = workdir(spec.deployment_id)
        models_dir = folder / f"models-{_tag(spec.spec_digest)}"
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
        endpoints.write_server(spec.deployment_id, name, record)
        log = folder / "logs" / "triton.log"
        try:
            self._wait_until_loaded(spec.deployment_id, record, progress)
            if spec.mode == "entry_script":
                entry_scripts.wait_until_serving(
                    f"http://127.0.0.1:{record['entry_port']}/", lambda: running(record), progress, log=log
                )
        except TargetError as exc:
            stop_server(spec.deployment_id, name, spec.spec_digest, progress)
            # Both servers share a sandbox, and one that ends ends the other: an
            # entry script whose init() raised while Triton was still loading
            # took Triton with it (seen on a busy machine). That is the script's
            # failure, permanent, not a Triton start-up to try again.
            raised = entry_scripts.raised_in(log) if spec.mode == "entry_script" and not exc.permanent else ""
            if raised:
                raise TargetError(entry_scripts.exited_message(raised), permanent=True) from exc
            raise
        return record

    def _take_all_traffic(self, endpoint: endpoints.EndpointRecord, name: str, auth: bool, progress: Progress) -> None:
        """Move every request to `name` (with its spec's auth, which is the
        endpoint's), let the router finish what the others were serving, then
        stop them. The order makes the redeploy lossless."""
        others = {n: s for n, s in endpoints.servers(endpoint.deployment_id).items() if n != name}
        endpoint.traffic, endpoint.auth = {name: 100}, auth
        endpoints.write(endpoint)
        reloaded = endpoints.publish()
        if not others:
            return
        if reloaded and not router.wait_drained():
            progress(f"Requests still open after {settings.LOCAL_ENDPOINT_DRAIN_SECONDS} s were cut")
        for other, record in others.items():
            progress(f"Stopping the previous Triton deployment {other}")
            stop_server(endpoint.deployment_id, other, record.get("spec_digest", ""), progress)
            self._remove_staging(endpoint.deployment_id, record.get("spec_digest", ""))

    def _remove_staging(self, deployment_id: int, spec_digest: str) -> None:
        if not spec_digest:
            return
        for staged in (f"models-{_tag(spec_digest)}", f"sandbox-{_tag(spec_digest)}"):
            shutil.rmtree(workdir(deployment_id) / staged, ignore_errors=True)

    def _start(self, spec: DeploySpec, folder: Path, models_dir: Path, runtime, progress: Progress) -> dict:
        """Start the deployment's process tree (sandboxed unless switched off)
        and, for a sandbox, the host's bridges to it; the record to keep."""
        entry = spec.mode == "entry_script"
        sandboxed = sandbox.enabled()
        layout = servers.Layout.for_sandbox(entry) if sandboxed else servers.Layout.on_host()
        box = folder / f"sandbox-{_tag(spec.spec_digest)}"
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
            "mode": spec.mode,
            "spec_digest": spec.spec_digest,
            "models_dir": str(models_dir),
            "started_at": time.time(),
            "bridges": [],
        }
        # The endpoint's router reaches the servers directly: through the
        # sandbox's sockets, or on the host ports of an unsandboxed Triton.
        if sandboxed:
            record["route_triton"] = f"unix@{bridges[sandbox.TRITON_PORT]}"
            record["route_front"] = f"unix@{bridges[sandbox.ENTRY_PORT]}" if entry else record["route_triton"]
        else:
            record["route_triton"] = record["route_front"] = f"127.0.0.1:{layout.triton_port}"
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
        progress(f"Triton started; the dashboard's probes reach it on 127.0.0.1:{record['http_port']}")
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
                    tail = " | ".join(files.tail(workdir(deployment_id) / "logs" / "triton.log", 5))
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
                    raise TargetError(f"Triton could not load {reasons}", permanent=True)
                if index and all(m.get("state") == "READY" for m in index):
                    progress(f"All {len(index)} model version(s) loaded")
                    return
                time.sleep(0.2)
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
        """The Triton deployment with the most traffic, probed directly; the
        endpoint's address, split and key. Also restarts the endpoint's router
        if it is not serving (the reconciler calls this every round)."""
        self._on_this_host()
        endpoint = endpoints.read(ref.id) or legacy.move_behind_endpoint(ref.id)
        if endpoint is None:
            return Observation(exists=False, detail="no endpoint: never deployed here, or deleted")
        if not router.running():
            endpoints.publish()  # from the records, on the same ports: the addresses answer again
        record = _main_server(endpoint)
        if not local_processes.is_running(_process(record)):
            return Observation(exists=False, detail="no tritonserver process is running")
        if not running(record):
            return Observation(exists=False, detail="a bridge into the sandbox is not running")
        base = _base_url(record)
        keys = endpoint.readable_keys() if endpoint.auth else []
        observation = Observation(
            exists=True,
            spec_digest=record.get("spec_digest", ""),
            scoring_uri=scoring_uri(endpoint, record),
            traffic=dict(endpoint.traffic),
            key=keys[0] if keys else "",
            secondary_key=keys[1] if len(keys) > 1 else "",
        )
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

    # --- the endpoint ----------------------------------------------------------

    def set_traffic(self, ref: DeploymentRef, traffic: dict[str, int], progress: Progress) -> None:
        """Shares by Triton deployment name, as on Azure: every name must run
        behind this endpoint, and the shares add up to 100."""
        self._on_this_host()
        endpoint = endpoints.read(ref.id) or legacy.move_behind_endpoint(ref.id)
        if endpoint is None:
            raise TargetError("this deployment has no endpoint here (never deployed, or deleted)", permanent=True)
        present = endpoints.servers(ref.id)
        unknown = sorted(set(traffic) - set(present))
        if unknown:
            raise TargetError(
                f"no deployment named {', '.join(unknown)} on this endpoint "
                f"(it has {', '.join(sorted(present)) or 'none'})",
                permanent=True,
            )
        stopped = sorted(name for name, share in traffic.items() if share and not running(present[name]))
        if stopped:
            raise TargetError(f"{', '.join(stopped)} is not running: no traffic can go to it", permanent=True)
        progress("Traffic " + ", ".join(f"{name} {share}%" for name, share in sorted(traffic.items())))
        endpoint.traffic = {**{name: 0 for name in present}, **traffic}
        endpoints.write(endpoint)
        endpoints.publish()

    def retire(self, ref: DeploymentRef, name: str, progress: Progress) -> None:
        """Stop one Triton deployment that takes no traffic, and forget it."""
        self._on_this_host()
        endpoint = endpoints.read(ref.id)
        if endpoint is not None and endpoint.traffic.get(name, 0) > 0:
            raise TargetError(
                f"{name} takes {endpoint.traffic[name]}% of the traffic; move it elsewhere first", permanent=True
            )
        record = endpoints.read_server(ref.id, name)
        if endpoint is not None and name in endpoint.traffic:
            del endpoint.traffic[name]
            endpoints.write(endpoint)
            # The router's old worker lets go of its connections to the server
            # first: a Triton stops at once, not after waiting on them.
            if endpoints.publish():
                router.wait_drained()
        if record is None:
            progress(f"No Triton deployment {name} here: nothing to remove")
            return
        progress(f"Stopping Triton deployment {name}")
        stop_server(ref.id, name, record.get("spec_digest", ""), progress)
        self._remove_staging(ref.id, record.get("spec_digest", ""))

    def read_counters(self, ref: DeploymentRef, name: str):
        """The Triton deployment's own /metrics (its latency summaries are on)."""
        from workers.targets import counters as triton_counters

        record = endpoints.read_server(ref.id, name)
        if not record or not record.get("metrics_port"):
            raise TargetError(f"no metrics address for {name}: it is not running here", permanent=False)
        try:
            answer = httpx.get(f"http://127.0.0.1:{record['metrics_port']}/metrics", timeout=_PROBE_TIMEOUT)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise TargetError(f"reading {name}'s /metrics: {type(exc).__name__}", permanent=False) from exc
        counters = triton_counters.from_metrics(answer.text)
        # The router down: the reconciler starts it again; Triton's counts still stand.
        with contextlib.suppress(OSError):
            counters.answered = router.responses(ref.id).get(name, {})
        return counters

    def keys(self, ref: DeploymentRef) -> list[str]:
        endpoint = endpoints.read(ref.id)
        return endpoint.readable_keys() if endpoint else []

    def regenerate_key(self, ref: DeploymentRef, which: str, progress: Progress) -> None:
        self._on_this_host()
        endpoint = endpoints.read(ref.id)
        if endpoint is None:
            raise TargetError("this deployment has no endpoint here (never deployed, or deleted)", permanent=True)
        progress(f"Regenerating the {which} key of endpoint {endpoint.address}")
        endpoints.regenerate_key(endpoint, which)
        endpoints.publish()

    # --- delete and logs -------------------------------------------------------

    def delete(self, ref: DeploymentRef, progress: Progress) -> None:
        """The address stops answering first, then the router finishes what it
        was serving, then the servers stop: none of them waits on a client."""
        self._on_this_host()
        if endpoints.read(ref.id) is not None:
            endpoints.remove(ref.id)
            try:
                if endpoints.publish():
                    router.wait_drained()
                progress("Endpoint removed")
            except TargetError as exc:
                # The servers stop anyway; the next status check brings the router in line.
                progress(f"The endpoint router could not be updated now: {exc.message}")
        stop_servers(ref.id, progress)
        for staged in [*workdir(ref.id).glob("models-*"), *workdir(ref.id).glob("sandbox-*")]:
            shutil.rmtree(staged, ignore_errors=True)
        progress("Server stopped; logs kept")

    def logs(self, ref: DeploymentRef, tail: int) -> list[str]:
        """Triton's and, in entry-script mode, the entry server's output: one sandbox, one log."""
        return files.tail(workdir(ref.id) / "logs" / "triton.log", tail)
