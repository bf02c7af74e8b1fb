"""Drive the REAL azureml-core (SDK v1) through FakeAzureMLv1, step by step. Not a pytest test.

    /work/main/.venv/bin/python -m tests.fakes.azureml.demo_v1     (from /work/main)

It registers a Triton model folder, deploys it no-code to an AKS target and
polls it the way the dashboard's reconciler will (no wait_for_deployment),
reads state, scoring URI, keys, logs and the service list, deploys again with
an entry script on a clone of the curated AzureML-Triton environment, shows
injected failures as the SDK reports them, and deletes everything. Nothing
may leave 127.0.0.1: ``no_external_network`` refuses any other host, and the
script fails if anything was refused or reached a route the fake lacks.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fakes.azureml.routing import no_external_network, route_azure_to, use_azureml_home

# HOME first: azureml fixes its discovery-cache path at import time.
_SCRATCH = Path(tempfile.mkdtemp(prefix="demo-v1-"))
use_azureml_home(_SCRATCH / "home")

from tests.fakes.azureml.v1 import LIVENESS_502, UNHEALTHY, FakeAzureMLv1, make_arm_token  # noqa: E402

T0 = time.perf_counter()


def step(title: str) -> None:
    print(f"\n[{time.perf_counter() - T0:6.2f}s] == {title}")


def wait_settled(service, timeout: float = 10.0) -> str:
    """Poll like the reconciler: update_deployment_state() until the state is no longer Transitioning."""
    deadline = time.monotonic() + timeout
    seen = [service.state]
    while service.state == "Transitioning":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service.name} still Transitioning")
        time.sleep(0.05)
        service.update_deployment_state()
        seen.append(service.state)
    print(f"   states seen: {' -> '.join(dict.fromkeys(seen))}")
    return service.state


def make_project(root: Path) -> None:
    model = root / "models" / "triton" / "add_sub"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "add_sub"\nbackend: "python"\nmax_batch_size: 0\n')
    (model / "1" / "model.py").write_text(
        "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"
    )
    src = root / "src"
    src.mkdir()
    (src / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")


def main() -> int:
    deployed: list[tuple[str, Path]] = []
    deleted: list[str] = []

    def on_deploy(name: str, model_dir: Path) -> str:
        files = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
        deployed.append((name, model_dir))
        print(f"   on_deploy({name!r}) got {len(files)} files: {files}")
        return "http://127.0.0.1:9/fake"

    def on_delete(name: str) -> None:
        deleted.append(name)
        print(f"   on_delete({name!r})")

    project = _SCRATCH / "project"
    make_project(project)
    fake = FakeAzureMLv1(on_deploy=on_deploy, on_delete=on_delete).start()
    print(f"fake at {fake.base_url}, HOME={os.environ['HOME']}")
    try:
        with no_external_network() as refused, route_azure_to(fake):
            step("import azureml.core")
            from azureml.core import ComputeTarget, Environment, Model, Webservice, Workspace
            from azureml.core.authentication import ArmTokenAuthentication
            from azureml.core.model import InferenceConfig
            from azureml.core.webservice import AksWebservice
            from azureml.exceptions import WebserviceException

            step("Workspace(...) with ArmTokenAuthentication(cloud='AzureCloud')")
            auth = ArmTokenAuthentication(make_arm_token(), cloud="AzureCloud")
            ws = Workspace(fake.subscription_id, fake.resource_group, fake.workspace_name, auth=auth)
            print(f"   {ws.name} in {ws.location}; discovery {ws.discovery_url}")

            step("ComputeTarget(ws, 'aks-gpu')")
            aks = ComputeTarget(ws, "aks-gpu")
            print(f"   {type(aks).__name__} {aks.name} state={aks.provisioning_state}")

            step("Model.register(model_path='models', framework=MULTI) from inside the project (chdir)")
            os.chdir(project)
            model = Model.register(
                workspace=ws,
                model_path="models",
                model_name="add-sub",
                tags={"repo": "demo", "commit": "abc123"},
                description="Triton add/sub example",
                model_framework=Model.Framework.MULTI,
            )
            print(f"   id={model.id} version={model.version} framework={model.model_framework} tags={model.tags}")
            again = Model(ws, name="add-sub")
            print(f"   Model(ws, name='add-sub') -> {again.id}")

            step("Model.deploy no-code to AKS (no wait_for_deployment)")
            config = AksWebservice.deploy_configuration(
                compute_target_name="aks-gpu", gpu_cores=1, cpu_cores=1, memory_gb=4, auth_enabled=True
            )
            service = Model.deploy(
                ws, "add-sub-svc", [model], deployment_config=config, deployment_target=aks, overwrite=True
            )
            print(f"   returned {type(service).__name__} state={service.state}; create_calls={fake.create_calls}")
            state = wait_settled(service)
            assert state == "Healthy", state
            print(f"   scoring_uri={service.scoring_uri}")
            print(f"   swagger_uri={service.swagger_uri}")
            print(
                f"   resources: cpu={service.container_resource_requirements.cpu}"
                f" gpu={service.container_resource_requirements.gpu}"
                f" memory={service.container_resource_requirements.memory_in_gb}GB"
            )

            step("Webservice(ws, name), keys, logs, list")
            fetched = Webservice(ws, "add-sub-svc")
            print(f"   Webservice(ws, 'add-sub-svc') -> {type(fetched).__name__} state={fetched.state}")
            primary, secondary = fetched.get_keys()
            assert (primary, secondary) == fake.keys("add-sub-svc")
            print(f"   get_keys() -> {primary[:8]}..., {secondary[:8]}... (match fake.keys)")
            token = fetched.get_access_token()
            print(f"   get_access_token() -> {token.token_type} {token.access_token[:8]}... expires {token.expiry_on}")
            print("   get_logs():\n      " + fetched.get_logs().strip().replace("\n", "\n      "))
            listed = Webservice.list(ws)
            print(f"   Webservice.list(ws) -> {[(s.name, s.state) for s in listed]}")

            step("Entry-script deploy: Environment.get('AzureML-Triton').clone(...) + InferenceConfig")
            env = Environment.get(ws, "AzureML-Triton").clone("my-triton")
            env.python.conda_dependencies.add_pip_package("tritonclient[http]==2.41.0")
            env.environment_variables["WORKER_COUNT"] = "2"
            inference = InferenceConfig(entry_script="score.py", source_directory="src", environment=env)
            scripted = Model.deploy(
                ws,
                "add-sub-script",
                [model],
                inference_config=inference,
                deployment_config=config,
                deployment_target=aks,
                overwrite=True,
            )
            wait_settled(scripted)
            record = fake.service("add-sub-script")
            print(f"   scoring_uri={scripted.scoring_uri}")
            pip = list(scripted.environment.python.conda_dependencies.pip_packages)
            print(f"   environment={scripted.environment.name} pip={pip}")
            print(f"   env vars={record.environment_variables}")
            print(f"   entry script on disk: {record.entry_script} exists={record.entry_script.is_file()}")

            step("Overwrite add-sub-svc (overwrite=True): on_delete of the old one, then on_deploy")
            keys_before = fake.keys("add-sub-svc")
            again = Model.deploy(
                ws, "add-sub-svc", [model], deployment_config=config, deployment_target=aks, overwrite=True
            )
            wait_settled(again)
            print(f"   keys kept across the overwrite: {fake.keys('add-sub-svc') == keys_before}")

            step("Injected QuotaExceeded (async: accepted, then Failed)")
            fake.fail_next_deploy(
                "QuotaExceeded", "Deployment would exceed the GPU quota of the cluster (1 of 1 used)."
            )
            failed = Model.deploy(
                ws, "add-sub-quota", [model], deployment_config=config, deployment_target=aks, overwrite=True
            )
            wait_settled(failed)
            print(f"   state={failed.state} error={failed.error}")
            # What a caller of wait_for_deployment would see (running_polls=0 spares its 5 s sleep here).
            fake.running_polls = 0
            try:
                failed.wait_for_deployment()
            except WebserviceException as exc:
                print(
                    "   wait_for_deployment() raised WebserviceException:\n      "
                    + exc.message.strip().replace("\n", "\n      ")
                )
            fake.running_polls = 1

            step("Injected QuotaExceeded at validation (sync: Model.deploy raises, nothing created)")
            before = fake.create_calls
            fake.fail_next_deploy("QuotaExceeded", "Not enough GPU quota in aks-gpu.", stage="validate")
            try:
                Model.deploy(
                    ws, "add-sub-quota2", [model], deployment_config=config, deployment_target=aks, overwrite=True
                )
            except WebserviceException as exc:
                print(f"   WebserviceException: {exc.message}")
            assert fake.create_calls == before

            step("Injected rejection of POST /services (sync 409)")
            fake.fail_next_deploy("Conflict", "Another operation is in progress.", stage="create", http_status=409)
            try:
                Model.deploy(
                    ws, "add-sub-busy", [model], deployment_config=config, deployment_target=aks, overwrite=True
                )
            except WebserviceException as exc:
                print(
                    "   WebserviceException: "
                    + exc.message.splitlines()[0]
                    + " ... "
                    + exc.message.splitlines()[-1][:160]
                )

            step("Liveness probe 502 on a running service")
            fake.set_unhealthy("add-sub-svc", LIVENESS_502)
            service.update_deployment_state()
            assert service.state == UNHEALTHY
            print(f"   state={service.state} error={service.error}")

            step("delete everything")
            for svc in Webservice.list(ws):
                svc.delete()
                print(f"   deleted {svc.name} (state now {svc.state})")
            print(f"   Webservice.list(ws) -> {Webservice.list(ws)}")

        step("calls the SDK made (workspace scope shortened to {ws})")
        calls: dict[str, int] = {}
        for method, path in fake.requests:
            path = path.replace(fake.workspace_path(), "{ws}").replace("/modelmanagement/v1.0{ws}", "{MMS}")
            path = re.sub(r"/services/(?!validate)[^/]+", "/services/{name}", path)
            path = re.sub(r"/operations/[^/]+", "/operations/{id}", path)
            path = re.sub(r"/(LocalUpload)/.*", r"/\1/...", path)
            calls[f"{method} {path}"] = calls.get(f"{method} {path}", 0) + 1
        for call, count in calls.items():
            print(f"   {count:3d} x {call}")

        step("checks")
        print(f"   create_calls={fake.create_calls} requests={len(fake.requests)} unhandled={fake.unhandled}")
        print(f"   refused non-loopback hosts={refused}")
        print(f"   on_deploy calls={[n for n, _ in deployed]} on_delete calls={deleted}")
        assert not fake.unhandled, fake.unhandled
        assert not refused, refused
        assert sorted(deleted) == sorted(n for n, _ in deployed)
    finally:
        fake.stop()
        os.chdir(_SCRATCH.parent)
        shutil.rmtree(_SCRATCH, ignore_errors=True)
    print(f"\nOK in {time.perf_counter() - T0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
