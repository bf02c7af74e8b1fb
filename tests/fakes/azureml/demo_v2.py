"""Drive the REAL azure-ai-ml (SDK v2) through the in-repo fake, step by step.

Run: .venv/bin/python -m tests.fakes.azureml.demo_v2   (from the repository root)

Not a pytest test: a standalone walk through every call the dashboard makes
(model registration with folder upload, Kubernetes and Managed endpoints and
deployments, traffic, keys, logs, listing, deletion, and an injected
deployment failure), printing what the SDK returns. A socket guard makes any
attempt to reach beyond 127.0.0.1 fail loudly. Exits non-zero on any surprise.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import tempfile
import time
from pathlib import Path

if __package__ in {None, ""}:  # run as a file path: make "tests.fakes..." importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fakes.azureml.v2 import FakeAzureMLv2, use_fake_v2

CONFIG_PBTXT = """name: "add_sub"
backend: "python"
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [4] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [4] }]
"""
MODEL_PY = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"


BLOCKED: list[str] = []  # every refused attempt, even one some library swallowed


def guard_loopback_only() -> None:
    """Refuse any connection or name lookup that is not for 127.0.0.1 / localhost."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def check(host: object) -> None:
        if host in {"localhost"}:
            return
        try:
            if ipaddress.ip_address(str(host)).is_loopback:
                return
        except ValueError:
            pass
        BLOCKED.append(repr(host))
        raise RuntimeError(f"demo_v2: blocked a connection to {host!r}: only 127.0.0.1 may be contacted")

    def connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple):
            check(address[0])
        return real_connect(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        check(host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


class Steps:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.count = 0

    def __call__(self, title: str) -> None:
        self.count += 1
        # A leading newline: the SDK's pollers print "." without one.
        print(f"\n[{time.perf_counter() - self.started:6.2f}s] step {self.count}: {title}", flush=True)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"demo_v2: FAILED: {what}")
    print(f"    ok: {what}")


def main() -> int:
    guard_loopback_only()
    t0 = time.perf_counter()
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import (
        KubernetesOnlineDeployment,
        KubernetesOnlineEndpoint,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        Model,
    )
    from azure.core.exceptions import HttpResponseError

    import_seconds = time.perf_counter() - t0

    deployed: dict[tuple[str, str], dict[str, str]] = {}
    deleted: list[tuple[str, str]] = []

    def on_deploy(endpoint: str, deployment: str, files: Path) -> str:
        deployed[(endpoint, deployment)] = {
            p.relative_to(files).as_posix(): p.read_text() for p in sorted(files.rglob("*")) if p.is_file()
        }
        # Nothing listens on port 9: the SDK never contacts the data plane.
        return f"http://127.0.0.1:9/fake/{endpoint}/{deployment}"

    def on_delete(endpoint: str, deployment: str) -> None:
        deleted.append((endpoint, deployment))

    step = Steps()
    fake = FakeAzureMLv2(on_deploy=on_deploy, on_delete=on_delete)
    fake.start()
    print(f"azure.ai.ml imported in {import_seconds:.2f}s; fake at {fake.base_url}")
    try:
        with use_fake_v2(fake), tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp) / "model_repository"
            (repo / "add_sub" / "1").mkdir(parents=True)
            (repo / "add_sub" / "config.pbtxt").write_text(CONFIG_PBTXT)
            (repo / "add_sub" / "1" / "model.py").write_text(MODEL_PY)
            ml = fake.ml_client(show_progress=False)

            step("register the triton_model (folder upload to workspaceblobstore)")
            model = ml.models.create_or_update(Model(type=AssetTypes.TRITON_MODEL, path=str(repo), name="add-sub"))
            print(f"    model {model.name}:{model.version} type={model.type}\n    path={model.path}")
            expect(model.type == AssetTypes.TRITON_MODEL and model.version == "1", "registered as triton_model v1")

            step("register the same folder again (the SDK finds its upload by metadata and skips it)")
            puts_before = sum(r.method == "PUT" and r.path.startswith("/fakestorage/") for r in fake.requests)
            again = ml.models.create_or_update(Model(type=AssetTypes.TRITON_MODEL, path=str(repo), name="add-sub"))
            puts_after = sum(r.method == "PUT" and r.path.startswith("/fakestorage/") for r in fake.requests)
            print(f"    model {again.name}:{again.version}, blob PUTs this time: {puts_after - puts_before}")
            expect(again.version == "2" and puts_after == puts_before, "version 2, no blob re-uploaded")

            step("create Kubernetes endpoint 'triton-k8s' (compute aks-gpu, key auth)")
            endpoint = ml.online_endpoints.begin_create_or_update(
                KubernetesOnlineEndpoint(name="triton-k8s", compute="aks-gpu", auth_mode="key")
            ).result()
            print(f"    {type(endpoint).__name__} state={endpoint.provisioning_state} compute={endpoint.compute}")
            print(f"    scoring_uri={endpoint.scoring_uri} (the endpoint's one address, from creation on)")

            step("create deployment 'blue' (no-code Triton: model only)")
            blue = ml.online_deployments.begin_create_or_update(
                KubernetesOnlineDeployment(
                    name="blue", endpoint_name="triton-k8s", model=model, instance_type="gpuinstance", instance_count=1
                )
            ).result()
            print(f"    {type(blue).__name__} state={blue.provisioning_state} model={blue.model}")
            print(f"    on_deploy got files: {sorted(deployed[('triton-k8s', 'blue')])}")
            expect(
                deployed[("triton-k8s", "blue")]
                == {"add_sub/config.pbtxt": CONFIG_PBTXT, "add_sub/1/model.py": MODEL_PY},
                "on_deploy received the uploaded files by relative path",
            )
            endpoint = ml.online_endpoints.get("triton-k8s")
            print(f"    endpoint traffic after deploy: {endpoint.traffic}")
            expect(endpoint.traffic == {"blue": 0}, "a new deployment starts at 0% traffic")

            step("set traffic blue=100")
            endpoint.traffic = {"blue": 100}
            ml.online_endpoints.begin_create_or_update(endpoint).result()
            endpoint = ml.online_endpoints.get("triton-k8s")
            print(f"    traffic={endpoint.traffic} scoring_uri={endpoint.scoring_uri}")
            expect(endpoint.scoring_uri == fake.scoring_uri("triton-k8s"), "scoring_uri is the endpoint's own address")

            step("get_keys")
            keys = ml.online_endpoints.get_keys("triton-k8s")
            print(f"    {type(keys).__name__} primary={keys.primary_key[:6]}... secondary={keys.secondary_key[:6]}...")
            expect(keys.primary_key == fake.keys("triton-k8s").primary, "keys match fake.keys()")

            step("get_logs(lines=3)")
            logs = ml.online_deployments.get_logs("blue", "triton-k8s", lines=3)
            print("    " + logs.replace("\n", "\n    "))
            expect(len(logs.splitlines()) == 3, "tail honoured")

            step("list endpoints and deployments")
            print(f"    endpoints: {[(e.name, e.provisioning_state) for e in ml.online_endpoints.list()]}")
            print(
                f"    deployments: {[(d.name, d.provisioning_state) for d in ml.online_deployments.list('triton-k8s')]}"
            )

            step("deploy 'green' beside blue (0% traffic)")
            green = ml.online_deployments.begin_create_or_update(
                KubernetesOnlineDeployment(
                    name="green", endpoint_name="triton-k8s", model=again, instance_type="gpuinstance"
                )
            ).result()
            endpoint = ml.online_endpoints.get("triton-k8s")
            print(f"    green state={green.provisioning_state}; traffic={endpoint.traffic}")
            expect(endpoint.traffic == {"blue": 100, "green": 0}, "green at 0%")

            step("canary: blue=90 green=10")
            endpoint.traffic = {"blue": 90, "green": 10}
            ml.online_endpoints.begin_create_or_update(endpoint).result()
            endpoint = ml.online_endpoints.get("triton-k8s")
            print(f"    traffic={endpoint.traffic} scoring_uri={endpoint.scoring_uri}")

            step("all traffic to green: green=100 (blue=0)")
            endpoint.traffic = {"blue": 0, "green": 100}
            ml.online_endpoints.begin_create_or_update(endpoint).result()
            endpoint = ml.online_endpoints.get("triton-k8s")
            print(f"    traffic={endpoint.traffic} scoring_uri={endpoint.scoring_uri}")
            expect(endpoint.scoring_uri == fake.scoring_uri("triton-k8s"), "scoring_uri stays put when traffic moves")

            step("a traffic split that does not sum to 100 is refused")
            endpoint.traffic = {"blue": 50, "green": 40}
            try:
                ml.online_endpoints.begin_create_or_update(endpoint).result()
                expect(False, "bad split refused")
            except HttpResponseError as err:
                print(f"    {type(err).__name__} status={err.status_code} code={err.error.code if err.error else None}")
                print(f"    message: {err.message.splitlines()[0]}")

            step("deleting green while it takes 100% is refused")
            try:
                ml.online_deployments.begin_delete("green", "triton-k8s").result()
                expect(False, "delete refused")
            except HttpResponseError as err:
                print(f"    {type(err).__name__} status={err.status_code} code={err.error.code if err.error else None}")

            step("delete the retired 'blue'")
            ml.online_deployments.begin_delete("blue", "triton-k8s").result()
            remaining = [d.name for d in ml.online_deployments.list("triton-k8s")]
            print(f"    deployments now: {remaining}; on_delete calls: {deleted}")
            expect(remaining == ["green"] and deleted == [("triton-k8s", "blue")], "blue gone, on_delete called")

            step("delete the endpoint (takes green with it)")
            ml.online_endpoints.begin_delete("triton-k8s").result()
            names = [e.name for e in ml.online_endpoints.list()]
            print(f"    endpoints now: {names}; on_delete calls: {deleted}")
            expect(names == [] and ("triton-k8s", "green") in deleted, "endpoint and green gone")

            step("Managed variant: endpoint + deployment (Standard_NC6s_v3 x1) + traffic + keys + delete")
            managed = ml.online_endpoints.begin_create_or_update(
                ManagedOnlineEndpoint(name="triton-managed", auth_mode="key")
            ).result()
            deployment = ml.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name="blue",
                    endpoint_name="triton-managed",
                    model=model,
                    instance_type="Standard_NC6s_v3",
                    instance_count=1,
                )
            ).result()
            managed.traffic = {"blue": 100}
            ml.online_endpoints.begin_create_or_update(managed).result()
            managed = ml.online_endpoints.get("triton-managed")
            deployment = ml.online_deployments.get("blue", "triton-managed")
            print(
                f"    {type(managed).__name__} traffic={managed.traffic} scoring_uri={managed.scoring_uri}\n"
                f"    {type(deployment).__name__} {deployment.instance_type} x{deployment.instance_count} "
                f"state={deployment.provisioning_state}"
            )
            print(f"    keys: {type(ml.online_endpoints.get_keys('triton-managed')).__name__}")

            step("injected failure: fake.fail_next_deploy('QuotaExceeded', ...) on deployment 'green'")
            fake.fail_next_deploy("QuotaExceeded", "Not enough quota for Standard_NC6s_v3 in westeurope.")
            creates_before = fake.create_calls
            poller = ml.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name="green", endpoint_name="triton-managed", model=model, instance_type="Standard_NC6s_v3"
                )
            )
            try:
                poller.result()
                expect(False, "the poller raised")
            except HttpResponseError as err:
                print(f"    poller.result() raised {type(err).__module__}.{type(err).__name__}")
                print(f"    err.status_code={err.status_code} err.reason={err.reason!r}")
                print(f"    err.error.code={err.error.code!r} err.error.message={err.error.message!r}")
                print("    str(err): " + str(err).replace("\n", "\n              "))
                expect(err.error.code == "QuotaExceeded", "the SDK sees the injected code")
            failed = ml.online_deployments.get("green", "triton-managed")
            print(f"    online_deployments.get: state={failed.provisioning_state}")
            print(f"    fake.deployment_error: {fake.deployment_error('triton-managed', 'green')}")
            expect(str(failed.provisioning_state).endswith("FAILED"), "deployment is Failed")
            expect(fake.create_calls == creates_before + 1, "exactly one deployment create went out")
            expect(("triton-managed", "green") not in deployed, "on_deploy was not called")

            step("delete the managed endpoint")
            ml.online_endpoints.begin_delete("triton-managed").result()
            expect([e.name for e in ml.online_endpoints.list()] == [], "no endpoints left")
            expect(fake.unhandled == [] and fake.errors == [], "every request had a route, none crashed the fake")
            expect(BLOCKED == [], "nothing tried to reach beyond 127.0.0.1")
            hosts = {r.path.split("/")[1] for r in fake.requests}
            print(f"    {len(fake.requests)} requests reached the fake (first path segments: {sorted(hosts)})")
    finally:
        fake.stop()
    elapsed = time.perf_counter() - step.started
    print(f"\ndemo_v2: all {step.count} steps passed in {elapsed:.2f}s (+{import_seconds:.2f}s import)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
