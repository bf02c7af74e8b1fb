"""Triton's own counters as a rollout reads them: from /metrics and from the
statistics extension. The pages under tests/data/triton_signals/ were read
from the real Triton 2.51 (started by runtime.command) serving add_sub and
the two models beside them: 20 good add_sub requests, one of the wrong
shape; fails_when_negative 5 good, 3 raising, 1 error response; times_out
4 at once, 3 of them timed out in its queue."""

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from deployments.health import metrics as health_metrics
from tests import processes
from tests.archives import EXAMPLES
from tests.fakes.azureml.data_plane import TritonDataPlane
from workers.targets import counters as triton_counters
from workers.targets.local.runtime import TritonRuntime

DATA = Path(__file__).parent / "data" / "triton_signals"
METRICS = (DATA / "metrics.txt").read_text()
IDLE_METRICS = (DATA / "metrics-idle.txt").read_text()
STATISTICS = json.loads((DATA / "statistics.json").read_text())


def without_summaries(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if "_summary_us" not in line)


# ---------------------------------------------------------------------- /metrics


def test_a_metrics_page_gives_successes_and_failures_by_reason_summed_over_models():
    counters = triton_counters.from_metrics(METRICS)
    assert counters.success == 20 + 6 + 1  # the error response counts as a success
    assert counters.failures == {"BACKEND": 3, "REJECTED": 3, "CANCELED": 0, "OTHER": 0}


def test_a_metrics_page_gives_request_queue_and_compute_microseconds_summed_over_models():
    counters = triton_counters.from_metrics(METRICS)
    assert counters.request_us == 545512 + 62820 + 54592
    assert counters.queue_us == 154 + 365 + 1422
    assert counters.compute_us == 545062 + 61425 + 49031


def test_the_p95_and_p99_are_the_worst_models_in_microseconds():
    counters = triton_counters.from_metrics(METRICS)
    # times_out's one good request took half a second; it dominates both.
    assert counters.quantiles == {"p95": 545512, "p99": 545512}


def test_models_without_a_request_in_the_summary_window_give_no_quantiles():
    assert "Nan" in IDLE_METRICS
    counters = triton_counters.from_metrics(IDLE_METRICS)
    assert counters.quantiles == {}
    assert counters.success == 0


def test_a_page_without_latency_summaries_has_no_quantiles_and_the_same_counters():
    plain = triton_counters.from_metrics(without_summaries(METRICS))
    full = triton_counters.from_metrics(METRICS)
    assert plain.quantiles == {}
    assert (plain.success, plain.failures, plain.request_us) == (full.success, full.failures, full.request_us)


def test_a_failure_without_a_reason_label_counts_as_unknown():
    older = re.sub(r'reason="[A-Z]+",', "", METRICS)
    assert triton_counters.from_metrics(older).failures == {"unknown": 6}


def test_the_health_parser_reads_the_same_counters_with_latency_summaries_switched_on():
    with_summaries = health_metrics.parse(METRICS)
    plain = health_metrics.parse(without_summaries(METRICS))
    assert with_summaries.counters == plain.counters
    assert with_summaries.counters["add_sub"]["success"] == 20
    # Triton's own p95 per model for the Overview, the same figure the rollout gates read (theirs in µs).
    assert with_summaries.p95_ms
    assert max(with_summaries.p95_ms.values()) == triton_counters.from_metrics(METRICS).quantiles["p95"] / 1000
    assert plain.p95_ms == {}


# ---------------------------------------------------------------------- statistics extension


def test_statistics_give_the_same_successes_and_their_failures_without_reasons():
    counters = triton_counters.from_statistics(STATISTICS)
    assert counters.success == triton_counters.from_metrics(METRICS).success
    assert counters.failures == {"failed": 6}
    assert counters.quantiles == {}


def test_statistics_nanoseconds_become_the_microseconds_metrics_count():
    statistics, metrics = triton_counters.from_statistics(STATISTICS), triton_counters.from_metrics(METRICS)
    # /metrics adds each request's time in whole microseconds: it loses under one per request.
    for field in ("request_us", "queue_us", "compute_us"):
        gap = getattr(statistics, field) - getattr(metrics, field)
        assert 0 <= gap < statistics.success, field


def test_one_models_statistics_read_the_same_way():
    add_sub = {"model_stats": [m for m in STATISTICS["model_stats"] if m["name"] == "add_sub"]}
    counters = triton_counters.from_statistics(add_sub)
    assert (counters.success, counters.failures) == (20, {"failed": 0})


def test_empty_statistics_are_all_zero():
    assert triton_counters.from_statistics({"model_stats": []}).as_json() == {
        "success": 0.0,
        "failures": {"failed": 0.0},
        "request_us": 0.0,
        "queue_us": 0.0,
        "compute_us": 0.0,
        "quantiles": {},
        "answered": {},
    }


# ---------------------------------------------------------------------- the local Triton's command line


def test_a_local_triton_with_metrics_publishes_p95_and_p99_latency_summaries():
    runtime = TritonRuntime(Path("/opt/triton"))
    with_metrics = runtime.command(Path("/models"), http_port=8000, metrics_port=8002)
    assert "--metrics-config=summary_latencies=true" in with_metrics
    quantiles = next(arg for arg in with_metrics if arg.startswith("--metrics-config=summary_quantiles="))
    assert {"0.95", "0.99"} <= {pair.split(":")[0] for pair in quantiles.split("=", 2)[2].split(",")}
    without = runtime.command(Path("/models"), http_port=8000, metrics_port=None)
    assert "--allow-metrics=false" in without
    assert not any(arg.startswith("--metrics-config") for arg in without)


# ---------------------------------------------------------------------- a real Triton


def infer(base: str, model: str, *inputs: dict) -> int:
    return httpx.post(f"{base}/v2/models/{model}/infer", json={"inputs": list(inputs)}, timeout=30).status_code


def fp32(name: str, value: float, shape=(4,)) -> dict:
    count = 1
    for size in shape:
        count *= size
    return {"name": name, "shape": list(shape), "datatype": "FP32", "data": [value] * count}


@pytest.mark.triton
def test_a_real_triton_counts_the_same_successes_in_both_sources_and_its_failures_by_reason(tmp_path):
    repository = tmp_path / "models"
    shutil.copytree(EXAMPLES / "add_sub" / "add_sub", repository / "add_sub")
    shutil.copytree(DATA / "models" / "fails_when_negative", repository / "fails_when_negative")
    plane = TritonDataPlane(tmp_path)
    try:
        base = plane.start("signals", repository, metrics=True)
        metrics_url = plane.metrics_url("signals")
        assert [infer(base, "add_sub", fp32("INPUT0", 1), fp32("INPUT1", 2)) for _ in range(6)] == [200] * 6
        assert [infer(base, "fails_when_negative", fp32("INPUT0", 1)) for _ in range(2)] == [200] * 2
        assert [infer(base, "fails_when_negative", fp32("INPUT0", -1)) for _ in range(3)] == [500] * 3
        # Refused before it reaches the model: Triton counts it nowhere.
        assert infer(base, "add_sub", fp32("INPUT0", 1, shape=(3,)), fp32("INPUT1", 2)) == 400
        # An error response rather than an exception: Triton counts a success.
        assert infer(base, "fails_when_negative", fp32("INPUT0", 1000)) == 500

        def settled():
            counters = triton_counters.from_metrics(httpx.get(metrics_url, timeout=5).text)
            return counters if counters.success == 9 and counters.failures.get("BACKEND") == 3 else None

        from_metrics = processes.wait_for(settled, within=30, what="Triton's /metrics show every request")
        from_statistics = triton_counters.from_statistics(httpx.get(f"{base}/v2/models/stats", timeout=5).json())
    finally:
        plane.stop_all()

    assert from_statistics.success == from_metrics.success == 9
    assert from_metrics.failures == {"BACKEND": 3, "REJECTED": 0, "CANCELED": 0, "OTHER": 0}
    assert from_statistics.failures == {"failed": 3}
    assert 0 <= from_statistics.request_us - from_metrics.request_us < from_statistics.success
    assert from_metrics.queue_us <= from_metrics.request_us
    assert set(from_metrics.quantiles) == {"p95", "p99"}
    assert 0 < from_metrics.quantiles["p95"] <= from_metrics.quantiles["p99"]
