"""The data plane behind the fake control planes: real local Tritons.

SDK v1 services get a Triton each behind a proxy that enforces the service's
bearer key, as an AKS scoring URI does. SDK v2 deployments get a plain
Triton URL: the fake v2's own scoring front end checks the endpoint's key and
routes to it, as Azure's does. ``shared(repository)`` serves many Azure
deployments from ONE Triton, for tests that create dozens of them.
"""

import shutil
import threading
from pathlib import Path

import httpx
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from workers.targets.local import processes as local_processes
from workers.targets.local import runtime as triton_runtime


class _Server:
    def __init__(self, process, triton_url: str, proxy, metrics_url: str | None = None):
        self.process, self.triton_url, self.proxy = process, triton_url, proxy
        self.metrics_url = metrics_url


class TritonDataPlane:
    """start(name, repository[, key_for]) -> the base URL; stop(name); shared(repository).

    With ``key_for`` the URL is a proxy that, like Azure's, takes either of the
    keys ``key_for(name)`` returns, read at each request; without it, Triton's own URL.
    With ``metrics=True`` the server also serves /metrics, at ``metrics_url(name)``.
    """

    def __init__(self, workdir):
        self.workdir = workdir
        self.servers: dict[str, _Server] = {}
        self.refused = 0  # requests without the right key
        self.started = 0  # Tritons started, shared ones included
        self._shared_lock = threading.Lock()

    def shared(self, repository) -> str:
        """The URL of the one Triton serving ``repository`` for every caller (started on first use).

        The repository is copied first: the fakes delete the model files they
        hand to on_deploy when they stop, and this Triton may outlive them.
        ``stop(name)`` never stops it; ``stop_all()`` does.
        """
        with self._shared_lock:
            server = self.servers.get("shared")
            if server is None:
                copy = Path(self.workdir) / "shared-repository"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(repository, copy)
                self.start("shared", copy)
                server = self.servers["shared"]
            return server.triton_url

    def start(self, name: str, repository, key_for=None, *, metrics: bool = False) -> str:
        runtime = triton_runtime.prepare()
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        port = local_processes.free_port()
        metrics_port = local_processes.free_port() if metrics else None
        process = local_processes.spawn(
            runtime.command(repository, http_port=port, metrics_port=metrics_port),
            env=runtime.environment(),
            log=folder / "triton.log",
            cwd=folder,
        )
        triton_url = f"http://127.0.0.1:{port}"
        deadline_client = httpx.Client(timeout=2)
        for _ in range(300):
            try:
                if deadline_client.get(f"{triton_url}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            threading.Event().wait(0.1)
        else:
            local_processes.stop(process, grace=5)
            raise RuntimeError("the data-plane Triton did not become ready")
        deadline_client.close()
        self.started += 1
        proxy = self._proxy(triton_url, lambda: key_for(name)) if key_for is not None else None
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None
        self.servers[name] = _Server(process, triton_url, proxy, metrics_url)
        return f"http://127.0.0.1:{proxy.server_port}" if proxy is not None else triton_url

    def metrics_url(self, name: str) -> str | None:
        return self.servers[name].metrics_url

    def _proxy(self, triton_url: str, key):
        def app(environ, start_response):
            request = Request(environ)
            if request.headers.get("Authorization") not in {f"Bearer {k}" for k in key() if k}:
                self.refused += 1
                return Response("missing or wrong key", status=401)(environ, start_response)
            answer = httpx.request(
                request.method,
                f"{triton_url}{request.full_path.rstrip('?')}",
                content=request.get_data(),
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k.lower() in ("content-type", "inference-header-content-length")
                },
                timeout=30,
            )
            headers = [
                (k, v)
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "inference-header-content-length")
            ]
            return Response(answer.content, status=answer.status_code, headers=headers)(environ, start_response)

        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server

    def stop(self, name: str) -> None:
        if name == "shared":
            return  # see shared(): it outlives every deployment that used it
        self._stop(name)

    def _stop(self, name: str) -> None:
        server = self.servers.pop(name, None)
        if server is not None:
            if server.proxy is not None:
                server.proxy.shutdown()
            local_processes.stop(server.process, grace=5)

    def stop_all(self) -> None:
        for name in list(self.servers):
            self._stop(name)
