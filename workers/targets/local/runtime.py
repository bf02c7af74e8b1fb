"""The Triton Inference Server 2.51 binary that ships inside the nvidia-pytriton
wheel, prepared to run directly on a plain model repository.

Preparation (once per installed version, no download): copy the wheel's
`tritonserver/` folder to a runtime folder and put the Python backend stub
for this interpreter into its `backends/python/`. The server process needs
this venv's `bin` first on PATH (the stub imports numpy) and the
interpreter's own libpython before the wheel's libraries.
"""

import importlib.metadata
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

_PACKAGE = "nvidia-pytriton"
# quantile:allowed error pairs for Triton's latency summaries (the median for
# charts, p95 and p99 for rollout gates).
SUMMARY_QUANTILES = "0.5:0.05,0.95:0.01,0.99:0.001"


class RuntimeUnavailable(Exception):
    pass


@dataclass(frozen=True)
class TritonRuntime:
    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.root / "backends"

    def command(self, models: Path, *, http_port: int, metrics_port: int | None) -> list[str]:
        """tritonserver on 127.0.0.1 only, HTTP (+ metrics with latency
        summaries), no gRPC, explicit model control with every model loaded at
        start."""
        metrics = (
            [
                "--allow-metrics=true",
                "--allow-gpu-metrics=false",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={metrics_port}",
                # Latency percentiles for rollout gates, computed by Triton itself
                # over a sliding window of about a minute (see docs/facts.md).
                "--metrics-config=summary_latencies=true",
                f"--metrics-config=summary_quantiles={SUMMARY_QUANTILES}",
            ]
            if metrics_port
            else ["--allow-metrics=false"]
        )
        return [
            str(self.binary),
            f"--model-repository={models}",
            f"--backend-directory={self.backends}",
            "--http-address=127.0.0.1",
            f"--http-port={http_port}",
            "--allow-grpc=false",
            *metrics,
            "--pinned-memory-pool-byte-size=0",
            "--model-control-mode=explicit",
            "--load-model=*",
            # Keep serving when one model fails, so its reason can be read and shown.
            "--exit-on-error=false",
        ]

    def environment(self) -> dict[str, str]:
        """All a server needs, nothing of the dashboard's: no secret, no
        database or broker URL reaches a model."""
        venv_bin = str(Path(sys.executable).parent)
        libs = [sysconfig.get_config_var("LIBDIR") or "", str(_site_packages() / "nvidia_pytriton.libs")]
        return {
            "PATH": os.pathsep.join([venv_bin, "/usr/bin", "/bin"]),
            "LD_LIBRARY_PATH": os.pathsep.join(lib for lib in libs if lib),
            "LANG": "C.UTF-8",
        }


def _site_packages() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent.parent


def _source() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise RuntimeUnavailable("the nvidia-pytriton package is not installed") from exc
    source = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (source / "bin" / "tritonserver").is_file():
        raise RuntimeUnavailable(f"{source} holds no bin/tritonserver (an nvidia-pytriton without Triton?)")
    return source


def runtime_root() -> Path:
    version = importlib.metadata.version(_PACKAGE)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Path(settings.LOCAL_TRITON_RUNTIME_DIR) / f"pytriton-{version}-py{python}"


def prepare() -> TritonRuntime:
    """The prepared runtime, preparing it first if needed (safe when two
    workers do it at once: each builds a private copy, one rename wins)."""
    root = runtime_root()
    if (root / "bin" / "tritonserver").is_file():
        return TritonRuntime(root)
    source = _source()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / python / "triton_python_backend_stub"
    if not stub.is_file():
        raise RuntimeUnavailable(f"the wheel has no Python backend stub for Python {python}")
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
    try:
        copy = building / "tritonserver"
        shutil.copytree(source, copy, symlinks=True)
        shutil.copy2(stub, copy / "backends" / "python" / "triton_python_backend_stub")
        try:
            os.rename(copy, root)
        except OSError:
            if not (root / "bin" / "tritonserver").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return TritonRuntime(root)


def smoke_test(runtime: TritonRuntime, timeout: float = 30) -> str:
    """Start the server once on an empty repository and ask its version."""
    import httpx

    from workers.targets.local import processes as local_processes

    with tempfile.TemporaryDirectory() as empty:
        port = local_processes.free_port()
        log = Path(empty) / "triton.log"
        command = runtime.command(Path(empty), http_port=port, metrics_port=None)
        try:
            process = local_processes.spawn(command, env=runtime.environment(), log=log, cwd=Path(empty))
        except OSError as exc:
            raise RuntimeUnavailable(f"tritonserver did not start: {exc}") from exc
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    server = httpx.get(f"http://127.0.0.1:{port}/v2", timeout=2).json()
                    return f"Triton {server.get('version')} answered on 127.0.0.1:{port}"
                except httpx.HTTPError:
                    if not local_processes.is_running(process):
                        raise RuntimeUnavailable("tritonserver exited: " + log.read_text()[-2000:]) from None
                    time.sleep(0.2)
            raise RuntimeUnavailable(f"tritonserver did not answer within {timeout:.0f} s: " + log.read_text()[-2000:])
        finally:
            local_processes.stop(process, grace=5)
