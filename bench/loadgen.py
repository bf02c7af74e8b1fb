"""The load generator (deployments/loadlab/generator.py) against baselines
measured in the same run, on a trivial model (add_sub, Python backend) served
by a real Triton.

    .venv/bin/python bench/loadgen.py [--concurrency 1,4,8] [--rounds 3] [--seconds 6]
        [--check-concurrency 4] [--where direct,endpoint]
        [--independent perf_analyzer,threads]

1. Efficiency (issue 21: "the generator must not be the bottleneck", goal at
   least 0.8): at each concurrency N, the generator's measure_point (2 s
   windows until three agree within 10 %, at most 20; its figure is those
   three) against
   a plain multi-process tritonclient loop: N processes, each one
   tritonclient.http client calling infer in a loop for `--seconds` after a
   common start. The two alternate, `--rounds` times, so a slow spell of the
   machine hits both; the ratio generator / loop is taken per round, and the
   median of the rounds is reported.
2. Honesty (goal: within 15 %): at one concurrency, the generator's
   throughput and p50 against independent clients' on the same Triton in the
   same run, in rotating order, `--rounds` times: perf_analyzer 2.51 (the
   binary in the tritonclient==2.51.0 wheel, with the same window rule), set
   up on first run in var/bench-perf-analyzer/ (its own venv;
   libcudart.so.12 linked from the nvidia_pytriton.libs copy; Debian's
   libb64-0d must be installed; without them the threaded client alone), and
   `threads`: N threads of blocking tritonclient.http clients timing each
   request (p50 by statistics.median). Each client's CPU time per answer is
   printed beside (answers counted by Triton's statistics).

`--where`: `direct` is a Triton started on the host from the local runtime
on a staged copy of add_sub; `endpoint` is add_sub deployed to the local
target through the engine and reached through its endpoint (the HAProxy
router, with the key), as the dashboard's load tests reach it.

Ports: the endpoint takes LOCAL_ENDPOINT_PORTS (23000-23099 unless set), the
direct Triton a free port in 23100-23199.
"""

import argparse
import csv
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("LOCAL_ENDPOINT_PORTS", "23000-23099")

import echo_dashboard

VAR = echo_dashboard.start("bench-loadgen-")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import tritonclient.http as triton_http  # noqa: E402

from deployments.loadlab import generator  # noqa: E402
from deployments.loadlab.endpoint import headers_for, serving_deployment, triton_target  # noqa: E402

ROOT = echo_dashboard.ROOT
MODEL = "add_sub"
EXAMPLE = ROOT / "examples" / "model_repositories" / "add_sub"
PERF_HOME = ROOT / "var" / "bench-perf-analyzer"
PERF_VERSION = "2.51.0"
DIRECT_PORTS = range(23100, 23200)


# --- where the load goes ---------------------------------------------------


def port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def direct_triton():
    """add_sub, staged as the local target stages it, on a Triton of the host."""
    from workers.targets.local import processes as local_processes
    from workers.targets.local import runtime as triton_runtime
    from workers.targets.local import staging

    work = VAR / "direct-triton"
    models = work / "models"
    models.parent.mkdir(parents=True)
    staging.stage(EXAMPLE, models)
    runtime = triton_runtime.prepare()
    port = port_in(DIRECT_PORTS)
    metrics = port_in(range(port + 1, DIRECT_PORTS.stop))
    process = local_processes.spawn(
        runtime.command(models, http_port=port, metrics_port=metrics),
        env=runtime.environment(),
        log=work / "triton.log",
        cwd=work,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                return process, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the direct Triton did not become ready (see {work / 'triton.log'})")


def endpoint_deployment():
    """add_sub deployed to the local target by the engine, as the page does it."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from deployments.models import Target
    from deployments.services.deployments import deployment_create
    from deployments.services.operations import operation_execute
    from deployments.services.repositories import repository_load_example

    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", "--no-examples", stdout=open(os.devnull, "w"))  # noqa: SIM115
    admin = get_user_model().objects.get(username="admin")
    repository = repository_load_example(path=EXAMPLE, actor=admin).repository
    deployment = deployment_create(
        name="loadgen", repository=repository, target=Target.objects.get(name="local-dev"), actor=admin
    )
    operation = deployment.operations.order_by("-id").first()
    operation_execute(operation_id=operation.pk, task_id=f"bench-{operation.pk}")
    operation.refresh_from_db()
    if operation.status != "succeeded":
        raise SystemExit(f"deploying add_sub to the local target {operation.status}: {operation.error}")
    deployment.refresh_from_db()
    return deployment


# --- the clients -----------------------------------------------------------


def infer_call(url: str, headers: dict):
    """A blocking tritonclient.http client and the call it repeats (binary
    tensors both ways, as the generator's body has them)."""
    client = triton_http.InferenceServerClient(url.removeprefix("http://"), network_timeout=30)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = triton_http.InferInput(name, [4], "FP32")
        tensor.set_data_from_numpy(np.random.default_rng(0).random(4, dtype=np.float32), binary_data=True)
        inputs.append(tensor)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=True) for name in ("OUTPUT0", "OUTPUT1")]

    def call():
        # A copy: tritonclient writes Inference-Header-Content-Length into the dict it is given.
        client.infer(MODEL, inputs, outputs=outputs, headers=dict(headers))

    return call


def _loop_process(url, headers, start, end, counts):
    call = infer_call(url, headers)
    while time.time() < start:  # warm-up: connection made, server warm
        call()
    cpu = time.process_time()
    done = 0
    while True:
        call()
        if time.time() > end:
            break
        done += 1
    counts.put((done, time.process_time() - cpu))


def multiprocess_loop(url: str, headers: dict, concurrency: int, seconds: float) -> tuple[float, float]:
    """The baseline: `concurrency` processes, each a tritonclient.http loop;
    answers completed between a common start and end, per second, and the
    processes' CPU time per answer (µs)."""
    context = multiprocessing.get_context("fork")  # Django is set up already: no re-import
    counts = context.Queue()
    start = time.time() + 1.5
    workers = [
        context.Process(target=_loop_process, args=(url, headers, start, start + seconds, counts))
        for _ in range(concurrency)
    ]
    for worker in workers:
        worker.start()
    results = [counts.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    total = sum(done for done, _ in results)
    return total / seconds, sum(cpu for _, cpu in results) / max(total, 1) * 1e6


def threaded_client(url: str, headers: dict, concurrency: int, seconds: float) -> tuple[float, float]:
    """The fallback independent client: threads of blocking tritonclient.http
    clients, each request timed; (throughput, p50 ms)."""
    start = time.perf_counter() + 1.0
    end = start + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def run():
        call = infer_call(url, headers)
        mine = []
        while time.perf_counter() < start:
            call()
        while True:
            began = time.perf_counter()
            call()
            finished = time.perf_counter()
            if finished > end:
                break
            mine.append((finished - began) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / seconds, statistics.median(latencies)


WINDOW_MS, STABILITY, MAX_TRIALS = 2000, 0.10, 20  # the same for the generator and perf_analyzer


def the_generator(target: generator.Target, concurrency: int) -> tuple[generator.Point, float]:
    """A point measured by the generator, and its process's CPU time per answer (µs)."""
    method = generator.Method(window_seconds=WINDOW_MS / 1000, stability=STABILITY, max_trials=MAX_TRIALS)
    bounds = generator.Bounds(max_requests=10**9, deadline=time.monotonic() + 180)
    cpu = time.process_time()
    point = generator.measure_point(target, method, concurrency, bounds)
    cpu = time.process_time() - cpu
    if point.errors:
        raise SystemExit(f"the generator got {point.errors} errors: {point.error_samples}")
    return point, cpu / max(point.requests, 1) * 1e6


# --- perf_analyzer ---------------------------------------------------------


def perf_analyzer() -> tuple[list[str], dict]:
    """perf_analyzer 2.51 and its environment, set up under var/ on first use."""
    binary = PERF_HOME / "venv" / "bin" / "perf_analyzer"
    lib = PERF_HOME / "lib"
    if not binary.is_file():
        print(f"setting up perf_analyzer {PERF_VERSION} in {PERF_HOME} ...", flush=True)
        venv = PERF_HOME / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)  # noqa: S603 - our own
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, f"tritonclient=={PERF_VERSION}"], check=True)  # noqa: S603 - a pinned wheel
    cudart = lib / "libcudart.so.12"
    if not cudart.exists():
        from workers.targets.local.runtime import _site_packages

        copies = sorted((_site_packages() / "nvidia_pytriton.libs").glob("libcudart*.so.12*"))
        if not copies:
            raise RuntimeError("no libcudart.so.12 in nvidia_pytriton.libs")
        lib.mkdir(parents=True, exist_ok=True)
        cudart.symlink_to(copies[0])
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    version = subprocess.run(  # noqa: S603 - the binary set up above
        [str(binary), "--version"], env=env, capture_output=True, text=True, timeout=30
    )
    if PERF_VERSION not in version.stdout + version.stderr:
        raise RuntimeError(
            f"perf_analyzer does not run: {(version.stdout + version.stderr).strip()[:300]} "
            "(is Debian's libb64-0d installed?)"
        )
    return [str(binary)], env


def perf_analyzer_point(perf: tuple[list[str], dict], url: str, headers: dict, concurrency: int) -> dict:
    """perf_analyzer at one concurrency, its windows as the generator's (2 s,
    stable when three agree within 10 %, at most 20). It reports nothing for
    a point that never settles: tried again, up to three times."""
    command, env = perf
    out = VAR / f"perf-{time.monotonic_ns()}.csv"
    args = [
        *command,
        "-m",
        MODEL,
        "-u",
        url.removeprefix("http://"),
        "-i",
        "http",
        "--concurrency-range",
        str(concurrency),
        "-p",
        str(WINDOW_MS),
        "-s",
        str(round(STABILITY * 100)),
        "-r",
        str(MAX_TRIALS),
        "-f",
        str(out),
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}:{value}"]
    for attempt in range(1, 4):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603 - ours
        if done.returncode == 0 and out.is_file():
            row = next(csv.DictReader(out.open()))
            return {
                "throughput": float(row["Inferences/Second"]),
                "p50_ms": int(row["p50 latency"]) / 1000,
                "attempts": attempt,
            }
        print(f"  perf_analyzer attempt {attempt} failed ({done.returncode}): {done.stdout.strip()[-160:]}")
    raise RuntimeError(f"perf_analyzer failed 3 times: {(done.stdout + done.stderr)[-800:]}")


# --- the two benchmarks ----------------------------------------------------


def efficiency(url: str, headers: dict, target, concurrencies, rounds: int, seconds: float) -> dict:
    keys = ("loop", "generator", "ratio", "loop_cpu", "generator_cpu")
    figures = {n: {key: [] for key in keys} for n in concurrencies}
    for round_ in range(rounds):
        for n in concurrencies:
            # Alternate which goes first, so neither always gets the fresher machine.
            order = ("loop", "generator") if round_ % 2 == 0 else ("generator", "loop")
            got = {}
            for which in order:
                if which == "loop":
                    got["loop"], got["loop_cpu"] = multiprocess_loop(url, headers, n, seconds)
                else:
                    point, got["generator_cpu"] = the_generator(target, n)
                    got["generator"] = point.throughput
            for key in ("loop", "generator", "loop_cpu", "generator_cpu"):
                figures[n][key].append(got[key])
            figures[n]["ratio"].append(got["generator"] / got["loop"])
            print(
                f"  round {round_ + 1}, concurrency {n}: loop {got['loop']:.0f}/s, "
                f"generator {got['generator']:.0f}/s, ratio {got['generator'] / got['loop']:.2f}; "
                f"client CPU per answer: loop {got['loop_cpu']:.0f} µs, generator {got['generator_cpu']:.0f} µs",
                flush=True,
            )
    return figures


def triton_successes(url: str, headers: dict) -> int:
    """Triton's own count of add_sub's successful requests."""
    stats = httpx.get(f"{url}/v2/models/{MODEL}/stats", headers=headers, timeout=10).json()
    return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])


def independent_point(kind: str, perf, url: str, headers: dict, concurrency: int, seconds: float) -> dict:
    """One independent measurement, and its client's CPU time per answer
    (µs; the answers counted by Triton, warm-up included)."""
    before = triton_successes(url, headers)
    if kind == "perf_analyzer":
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures = perf_analyzer_point(perf, url, headers, concurrency)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    else:
        cpu = time.process_time()
        throughput, p50 = threaded_client(url, headers, concurrency, seconds)
        cpu = time.process_time() - cpu
        figures = {"throughput": throughput, "p50_ms": p50}
    answers = triton_successes(url, headers) - before
    return {**figures, "cpu_us": cpu / max(answers, 1) * 1e6}


def cross_check(url: str, headers: dict, target, concurrency: int, rounds: int, seconds: float, independents, perf):
    """Per round, the generator and each independent client in turn (the
    order rotating from round to round)."""
    clients = ["generator", *independents]
    rows = []
    for round_ in range(rounds):
        shift = round_ % len(clients)
        got = {}
        for which in clients[shift:] + clients[:shift]:
            if which == "generator":
                point, cpu = the_generator(target, concurrency)
                got[which] = {
                    "throughput": point.throughput,
                    "p50_ms": point.percentiles_ms["p50"],
                    "cpu_us": cpu,
                    "stable": point.stable,
                }
            else:
                got[which] = independent_point(which, perf, url, headers, concurrency, seconds)
        rows.append(got)
        print(
            f"  round {round_ + 1}: "
            + " | ".join(
                f"{which} {f['throughput']:.0f}/s p50 {f['p50_ms']:.2f} ms (CPU {f['cpu_us']:.0f} µs/answer)"
                for which, f in got.items()
            )
            + f"; generator stable: {got['generator']['stable']}",
            flush=True,
        )
    return rows


def report(where: str, effic: dict, rows: list, concurrency: int) -> None:
    print(f"\n== {where}: efficiency, generator / multi-process tritonclient loop (goal >= 0.80)")
    all_ratios = []
    for n, f in effic.items():
        ratio = statistics.median(f["ratio"])
        all_ratios.append(ratio)
        rounds = ", ".join(f"{r:.2f}" for r in f["ratio"])
        print(
            f"concurrency {n}: loop {statistics.median(f['loop']):.0f}/s, generator "
            f"{statistics.median(f['generator']):.0f}/s, ratio {ratio:.2f} (rounds: {rounds}); client CPU per "
            f"answer: loop {statistics.median(f['loop_cpu']):.0f} µs, generator "
            f"{statistics.median(f['generator_cpu']):.0f} µs"
        )
    if all_ratios:
        print(f"median of the concurrencies' ratios: {statistics.median(all_ratios):.2f}")
    if not rows:
        return
    for independent in [which for which in rows[0] if which != "generator"]:
        print(f"== {where}: cross-check at concurrency {concurrency}, generator / {independent} (goal within 15 %)")
        for key, unit in (("throughput", "/s"), ("p50_ms", " ms"), ("cpu_us", " µs CPU per answer")):
            gen = statistics.median(r["generator"][key] for r in rows)
            ind = statistics.median(r[independent][key] for r in rows)
            per_round = ", ".join(f"{r['generator'][key] / r[independent][key]:.2f}" for r in rows)
            print(
                f"{key}: generator {gen:.2f}{unit}, {independent} {ind:.2f}{unit}, "
                f"ratio {gen / ind:.2f} (rounds: {per_round})"
            )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="each baseline run's length")
    parser.add_argument("--check-concurrency", type=int, default=4)
    parser.add_argument("--where", default="direct,endpoint")
    parser.add_argument("--independent", default="perf_analyzer,threads", help="perf_analyzer and/or threads")
    parser.add_argument("--skip-efficiency", action="store_true")
    args = parser.parse_args()
    concurrencies = [int(n) for n in args.concurrency.split(",") if n]
    places = [w for w in args.where.split(",") if w]

    independents, perf = [k for k in args.independent.split(",") if k], None
    if "perf_analyzer" in independents:
        try:
            perf = perf_analyzer()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"perf_analyzer unavailable ({exc}); the cross-check uses the threaded client instead")
            independents = ["threads"]

    from workers.targets.local import adapter as local
    from workers.targets.local import processes as local_processes
    from workers.targets.local import router

    direct, results, deployed = None, {}, False
    try:
        for where in places:
            if where == "direct":
                direct, url = direct_triton()
                headers = {}
            else:
                deployed = True
                deployment = endpoint_deployment()
                url = deployment.scoring_uri.rstrip("/")
                headers = headers_for(deployment, serving_deployment(deployment))
            target = triton_target(url, headers, MODEL, "", "random", [])
            print(f"{where}: {url}", flush=True)
            effic = {}
            if not args.skip_efficiency:
                effic = efficiency(url, headers, target, concurrencies, args.rounds, args.seconds)
            rows = cross_check(
                url, headers, target, args.check_concurrency, args.rounds, args.seconds, independents, perf
            )
            results[where] = (effic, rows)
            if direct is not None:
                local_processes.stop(direct, grace=10)
                direct = None
    finally:
        if direct is not None:
            local_processes.stop(direct, grace=10)
        if deployed:
            from deployments.models import Deployment

            for deployment in Deployment.objects.all():
                local.stop_servers(deployment.pk)
            router.stop()
        shutil.rmtree(VAR, ignore_errors=True)

    print(f"\nmachine: {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}")
    for where, (effic, rows) in results.items():
        report(where, effic, rows, args.check_concurrency)


if __name__ == "__main__":
    main()
