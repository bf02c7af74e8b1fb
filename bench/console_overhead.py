"""The console API against a direct tritonclient.http call to the same local
Triton, in the same run, plus an authenticated no-op API endpoint as the
floor of any request through Django.

    .venv/bin/python bench/console_overhead.py [--calls 200]

A Python "echo" model (FP32 [-1] in, the same out) on the local target;
small (16 floats) and large (4 MB, binary) tensors; p50 and p95. Small tensors use the API's JSON
form; large ones Triton's binary extension, which the API passes through. The
dashboard runs under gunicorn as in production, on a throw-away SQLite
database. A bare WSGI echo (bench/wsgi_echo.py) under the same gunicorn
settings gives the floor of moving the large body through a Python server.
Goals: large p50 at most 1.2x the direct call; small p50 at most 1.5x
(direct call + no-op endpoint).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import echo_dashboard

ROOT = echo_dashboard.ROOT
VAR = echo_dashboard.start("bench-console-")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import tritonclient.http as triton_http  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from geventhttpclient.url import URL  # noqa: E402

from deployments import crypto  # noqa: E402
from deployments.models import Deployment, Target  # noqa: E402
from deployments.services.api_tokens import api_token_create  # noqa: E402
from deployments.services.deployments import deployment_create  # noqa: E402
from deployments.services.operations import operation_execute  # noqa: E402
from workers.targets.local import adapter as local  # noqa: E402
from workers.targets.local import processes as local_processes  # noqa: E402
from workers.targets.local import router  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20)
    return statistics.median(samples), cuts[18]


def timed(call, n: int) -> list[float]:
    for _ in range(min(10, n)):
        call()  # warm-up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def serve(app: str, port: int, cwd: Path) -> subprocess.Popen:
    """gunicorn as in production, one sync worker so calls do not overlap."""
    command = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    command += ["--threads", "1", "--log-level", "warning"]
    return subprocess.Popen(command, cwd=cwd, env=dict(os.environ), start_new_session=True)  # noqa: S603


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    admin, repository, _ = echo_dashboard.echo_repository(VAR)
    deployment = deployment_create(
        name="echo", repository=repository, target=Target.objects.get(name="local-dev"), actor=admin
    )
    operation = deployment.operations.get()
    operation_execute(operation_id=operation.pk, task_id="bench")
    deployment.refresh_from_db()
    if deployment.status != Deployment.Status.HEALTHY:
        raise SystemExit(f"the echo deployment is {deployment.status}: {deployment.status_reason}")
    _, key = api_token_create(user=admin, name="bench")
    port, echo_port = local_processes.free_port(), local_processes.free_port()
    web = serve("dashboard.wsgi", port, ROOT)
    echo = serve("wsgi_echo:app", echo_port, ROOT / "bench")
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {key}"}, timeout=30)
        for _ in range(100):
            try:
                if api.get("/api/v1/environments").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        direct = triton_http.InferenceServerClient(deployment.scoring_uri.removeprefix("http://"))
        endpoint_key = {"Authorization": f"Bearer {crypto.decrypt(deployment.key_encrypted)}"}
        results = {}
        for label, count in (("small", 16), ("large", 1024 * 1024)):
            values = np.random.default_rng(0).standard_normal(count).astype(np.float32)

            def direct_call(values=values):
                tensor = triton_http.InferInput("X", [values.size], "FP32")
                tensor.set_data_from_numpy(values, binary_data=True)
                direct.infer(
                    "echo",
                    [tensor],
                    outputs=[triton_http.InferRequestedOutput("Y", binary_data=True)],
                    headers=endpoint_key,
                )

            if label == "small":
                body = {
                    "model": "echo",
                    "inputs": [{"name": "X", "datatype": "FP32", "shape": [count], "data": values.tolist()}],
                }

                def console_call(body=body):
                    answer = api.post(f"/api/v1/deployments/{deployment.pk}/infer", json=body)
                    if answer.status_code != 200:
                        raise SystemExit(answer.text[:300])
            else:
                # Large tensors go as Triton's binary extension, as a client would send them.
                tensor = triton_http.InferInput("X", [count], "FP32")
                tensor.set_data_from_numpy(values, binary_data=True)
                raw, json_size = triton_http.InferenceServerClient.generate_request_body(
                    [tensor], outputs=[triton_http.InferRequestedOutput("Y", binary_data=True)]
                )
                header = json.loads(raw[:json_size])
                header["model"] = "echo"
                head = json.dumps(header).encode()
                binary_body = head + raw[json_size:]

                head_length = len(head)

                # The same HTTP client tritonclient.http uses underneath, so the
                # ratio is the dashboard's cost, not one client library's against another's.
                relay = HTTPClient.from_url(URL(str(api.base_url)), concurrency=1, network_timeout=30)
                relay_headers = {
                    "Authorization": f"Token {key}",
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(head_length),
                }

                def console_call(binary_body=binary_body, relay=relay, relay_headers=relay_headers):
                    answer = relay.post(
                        f"/api/v1/deployments/{deployment.pk}/infer", body=binary_body, headers=relay_headers
                    )
                    content = answer.read()
                    if answer.status_code != 200:
                        raise SystemExit(content[:300])
                    triton_http.InferenceServerClient.parse_response_body(
                        content, header_length=int(answer["Inference-Header-Content-Length"])
                    ).as_numpy("Y")

            calls = args.calls if label == "small" else max(20, args.calls // 10)
            results[label] = {
                "direct": percentiles(timed(direct_call, calls)),
                "console": percentiles(timed(console_call, calls)),
            }
            if label == "large":
                bare = HTTPClient.from_url(URL(f"http://127.0.0.1:{echo_port}/"), concurrency=1, network_timeout=30)

                def floor_call(binary_body=binary_body, bare=bare):
                    bare.post("/", body=binary_body).read()

                results[label]["floor"] = percentiles(timed(floor_call, calls))
        noop = percentiles(timed(lambda: api.get("/api/v1/environments"), args.calls))
    finally:
        for server in (web, echo):
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        local.stop_servers(deployment.pk)
        router.stop()
        shutil.rmtree(VAR, ignore_errors=True)
    print(f"authenticated no-op endpoint: p50 {noop[0]:.2f} ms, p95 {noop[1]:.2f} ms")
    for label, figures in results.items():
        (d50, d95), (c50, c95) = figures["direct"], figures["console"]
        print(f"{label}: direct p50 {d50:.2f} ms p95 {d95:.2f} ms | console p50 {c50:.2f} ms p95 {c95:.2f} ms")
    f50, f95 = results["large"]["floor"]
    print(f"large: bare WSGI echo of the same body (no Django, no Triton): p50 {f50:.2f} ms p95 {f95:.2f} ms")
    small_ratio = results["small"]["console"][0] / (results["small"]["direct"][0] + noop[0])
    large_ratio = results["large"]["console"][0] / results["large"]["direct"][0]
    large_floor_ratio = results["large"]["console"][0] / (results["large"]["direct"][0] + f50)
    print(f"small: console p50 / (direct + no-op) = {small_ratio:.2f}x (goal <= 1.5x)")
    print(f"large: console p50 / direct = {large_ratio:.2f}x (goal <= 1.2x)")
    print(f"large: console p50 / (direct + bare WSGI echo) = {large_floor_ratio:.2f}x")


if __name__ == "__main__":
    main()
