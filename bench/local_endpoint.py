"""The local target's endpoint, measured in one run against its own baselines.

    .venv/bin/python bench/local_endpoint.py [--calls 300] [--load-seconds 3] [--deletes 2]

1. The endpoint's own cost: a Python "echo" model (FP32 [-1]) deployed to the
   local target (sandboxed, behind the endpoint, with its key), against the
   same staged model served by an unsandboxed Triton on the host and called
   directly. p50 of a 16-float JSON request and of a 4 MB binary tensor.
   Goals: small at most 1.3x (or at most 1 ms more), large at most 1.1x.
2. A redeploy under load: one client at full speed through the endpoint
   (keep-alive, as a service calling it would) while a changed spec is
   deployed. Goals: 0 failed requests; the longest gap between two answers
   under 1 s, reported beside the p99 outside the redeploy.
3. Delete after use from the console: the dashboard's console calls a
   deployment, then it is deleted, against a deployment never called.
   Goal: ratio at most 1.2x.

The CI-sized check of 2 is tests/test_local_endpoint.py.
"""

import argparse
import shutil
import statistics
import threading
import time
from pathlib import Path

import echo_dashboard

VAR = echo_dashboard.start("bench-endpoint-")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import tritonclient.http as triton_http  # noqa: E402

from deployments import crypto  # noqa: E402
from deployments.console.infer import console_infer  # noqa: E402
from deployments.models import Deployment, Target  # noqa: E402
from deployments.services.deployments import deployment_create, deployment_delete, deployment_redeploy  # noqa: E402
from deployments.services.operations import operation_execute  # noqa: E402
from workers.targets.local import adapter as local  # noqa: E402
from workers.targets.local import processes as local_processes  # noqa: E402
from workers.targets.local import router, staging  # noqa: E402
from workers.targets.local import runtime as triton_runtime  # noqa: E402


def run_operation(deployment: Deployment) -> float:
    operation = deployment.operations.order_by("-id").first()
    started = time.perf_counter()
    operation_execute(operation_id=operation.pk, task_id=f"bench-{operation.pk}")
    elapsed = time.perf_counter() - started
    operation.refresh_from_db()
    if operation.status != "succeeded":
        raise SystemExit(f"{operation.kind} of {deployment.name} {operation.status}: {operation.error}")
    deployment.refresh_from_db()
    return elapsed


def deploy(repository, admin, name: str) -> Deployment:
    target = Target.objects.get(name="local-dev")
    deployment = deployment_create(name=name, repository=repository, target=target, actor=admin)
    run_operation(deployment)
    return deployment


def key_header(deployment: Deployment) -> dict[str, str]:
    return {"Authorization": f"Bearer {crypto.decrypt(deployment.key_encrypted)}"}


def p50_ms(call, n: int) -> float:
    for _ in range(min(10, n)):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def host_triton(repository: Path):
    """The same model, staged the same way, on an unsandboxed Triton of the host."""
    work = VAR / "host-triton"
    models = work / "models"
    staging.stage(repository, models)
    runtime = triton_runtime.prepare()
    port, metrics = local_processes.free_port(), local_processes.free_port()
    process = local_processes.spawn(
        runtime.command(models, http_port=port, metrics_port=metrics),
        env=runtime.environment(),
        log=work / "triton.log",
        cwd=work,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the host Triton did not become ready")


def endpoint_cost(deployment: Deployment, direct_port: int, calls: int) -> dict[str, tuple[float, float]]:
    figures = {}
    direct = triton_http.InferenceServerClient(f"127.0.0.1:{direct_port}")
    endpoint = triton_http.InferenceServerClient(deployment.scoring_uri.removeprefix("http://"))
    headers = key_header(deployment)
    for label, count, binary in (("small", 16, False), ("large", 1024 * 1024, True)):
        values = np.random.default_rng(0).standard_normal(count).astype(np.float32)

        def call(client, extra, values=values, binary=binary):
            tensor = triton_http.InferInput("X", [values.size], "FP32")
            tensor.set_data_from_numpy(values, binary_data=binary)
            output = triton_http.InferRequestedOutput("Y", binary_data=binary)
            client.infer("echo", [tensor], outputs=[output], headers=extra)

        n = calls if label == "small" else max(30, calls // 5)
        # Interleaved rounds, so that a slow spell of the machine hits both sides alike.
        direct_p50, endpoint_p50 = [], []
        for _ in range(3):
            direct_p50.append(p50_ms(lambda: call(direct, {}), n))
            endpoint_p50.append(p50_ms(lambda: call(endpoint, headers), n))
        figures[label] = (statistics.median(direct_p50), statistics.median(endpoint_p50))
    return figures


def redeploy_under_load(deployment: Deployment, admin, seconds: float) -> dict:
    headers = key_header(deployment)
    body = {"inputs": [{"name": "X", "shape": [16], "datatype": "FP32", "data": [1.0] * 16}]}
    url = f"{deployment.scoring_uri}/v2/models/echo/infer"
    samples, failures, stop, phase = [], [], threading.Event(), {"redeploying": False}

    def load():
        with httpx.Client(timeout=30, headers=headers) as client:
            last = time.perf_counter()
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    answer = client.post(url, json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError as exc:
                    ok, answer = False, exc
                now = time.perf_counter()
                if not ok:
                    failures.append(repr(answer)[:200])
                    continue
                samples.append((phase["redeploying"], (now - started) * 1000, now - last))
                last = now

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(seconds)
        phase["redeploying"] = True
        before = deployment.scoring_uri
        deployment_redeploy(deployment=deployment, actor=admin, changes={"worker_count": 3})
        took = run_operation(deployment)
        phase["redeploying"] = False
        time.sleep(1)
    finally:
        stop.set()
        loader.join()
    outside = [latency for during, latency, _ in samples if not during]
    return {
        "requests": len(samples),
        "failures": failures,
        "longest_gap_ms": max(gap for _, _, gap in samples) * 1000,
        "p99_outside_ms": statistics.quantiles(outside, n=100)[98],
        "redeploy_s": took,
        "same_address": deployment.scoring_uri == before,
    }


def delete_after_console(repository, admin, rounds: int) -> tuple[float, float]:
    used, unused = [], []
    for n in range(rounds):
        for label, times in (("used", used), ("unused", unused)):
            deployment = deploy(repository, admin, f"delete-{label}-{n}")
            if label == "used":
                for _ in range(5):
                    console_infer(
                        deployment=deployment,
                        actor=admin,
                        model="echo",
                        inputs=[{"name": "X", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}],
                    )
            deployment_delete(deployment=deployment, actor=admin)
            times.append(run_operation(deployment))
    return statistics.median(used), statistics.median(unused)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--load-seconds", type=float, default=3.0)
    parser.add_argument("--deletes", type=int, default=2)
    args = parser.parse_args()
    admin, repository, folder = echo_dashboard.echo_repository(VAR)
    direct, deployments = None, []
    try:
        deployment = deploy(repository, admin, "echo")
        deployments.append(deployment)
        direct, direct_port = host_triton(folder)
        cost = endpoint_cost(deployment, direct_port, args.calls)
        local_processes.stop(direct, grace=10)
        direct = None
        load = redeploy_under_load(deployment, admin, args.load_seconds)
        used, unused = delete_after_console(repository, admin, args.deletes)
    finally:
        if direct is not None:
            local_processes.stop(direct, grace=10)
        for deployment in Deployment.objects.all():
            local.stop_servers(deployment.pk)
        router.stop()
        shutil.rmtree(VAR, ignore_errors=True)

    for label, goal in (("small", "<= 1.3x or <= +1 ms"), ("large", "<= 1.1x")):
        direct_p50, endpoint_p50 = cost[label]
        print(
            f"{label}: direct host Triton p50 {direct_p50:.2f} ms | endpoint p50 {endpoint_p50:.2f} ms | "
            f"{endpoint_p50 / direct_p50:.2f}x, +{endpoint_p50 - direct_p50:.2f} ms (goal {goal})"
        )
    print(
        f"redeploy under load: {load['requests']} answers, {len(load['failures'])} failed (goal 0), "
        f"longest gap {load['longest_gap_ms']:.0f} ms (goal < 1000) vs p99 outside the redeploy "
        f"{load['p99_outside_ms']:.2f} ms; redeploy took {load['redeploy_s']:.1f} s; "
        f"same address: {load['same_address']}"
    )
    for failure in load["failures"][:5]:
        print(f"  failed: {failure}")
    print(f"delete: after console use {used:.2f} s, never used {unused:.2f} s: {used / unused:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
