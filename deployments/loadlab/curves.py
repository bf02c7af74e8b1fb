"""What the load-test pages draw and tabulate, from stored points: chart
JSON for static/js/curves.js ({"title", "x", "y", "series": {label: [[x, y],
...]}}) and the rows of the comparison and search tables. Pure."""

from deployments.loadlab.configs import describe

SPLIT = {
    "queue_us": "queue",
    "compute_input_us": "compute input",
    "compute_infer_us": "compute infer",
    "compute_output_us": "compute output",
}


def _label(test) -> str:
    return test.title


def _curve(test) -> list[list[float]]:
    return [[p["throughput"], p["p95_ms"]] for p in test.points]


def chart(figure: str, tests: list) -> dict:
    """ "curve": p95 against throughput, one series per run; "percentiles":
    p50..p99 against concurrency (of the first run); "split": Triton's
    server-side microseconds per request against concurrency."""
    first = tests[0]
    if figure == "curve":
        return {
            "title": "Latency against throughput",
            "x": "inferences/s",
            "y": "p95 ms",
            "series": {_label(test): _curve(test) for test in tests},
        }
    if figure == "percentiles":
        return {
            "title": "Client latency at each concurrency",
            "x": "concurrent clients",
            "y": "ms",
            "series": {
                name: [[p["concurrency"], p[f"{name}_ms"]] for p in first.points]
                for name in ("p50", "p90", "p95", "p99")
            },
        }
    if figure == "split":
        return {
            "title": "Triton's time per request (server side)",
            "x": "concurrent clients",
            "y": "µs",
            "series": {
                label: [[p["concurrency"], p["server"][key]] for p in first.points if p["server"].get(key) is not None]
                for key, label in SPLIT.items()
            },
        }
    raise KeyError(figure)


def side_by_side(first, second) -> list[dict]:
    """One row per concurrency either run measured, with both runs' figures
    and the second's throughput and p95 as ratios of the first's."""
    by_first = {p["concurrency"]: p for p in first.points}
    by_second = {p["concurrency"]: p for p in second.points}
    rows = []
    for concurrency in sorted(by_first.keys() | by_second.keys()):
        a, b = by_first.get(concurrency), by_second.get(concurrency)
        rows.append(
            {
                "concurrency": concurrency,
                "a": a,
                "b": b,
                "throughput_ratio": _ratio(b and b["throughput"], a and a["throughput"]),
                "p95_ratio": _ratio(b and b["p95_ms"], a and a["p95_ms"]),
            }
        )
    return rows


def _ratio(value, base):
    return round(value / base, 2) if value and base else None


def search_rows(search) -> list[dict]:
    """Each config tried (or still to try) with its best point and the
    latency at it, marked where it is a recommendation."""
    best = search.best or {}
    rows = []
    for index, config in enumerate(search.grid):
        result = search.results[index] if index < len(search.results) else None
        points = result["points"] if result else []
        top = max(points, key=lambda p: p["throughput"], default=None)
        within = [p for p in points if not p["errors"] and p["p95_ms"] <= search.latency_budget_ms]
        rows.append(
            {
                "index": index,
                "label": describe(config),
                "state": "measured" if result and points else ("failed" if result else "waiting"),
                "error": result["error"] if result else "",
                "top": top,
                "within": max(within, key=lambda p: p["throughput"], default=None),
                "best_latency": (best.get("latency") or {}).get("index") == index,
                "best_throughput": (best.get("throughput") or {}).get("index") == index,
            }
        )
    return rows


def search_chart(search) -> dict:
    return {
        "title": "Latency against throughput, per config",
        "x": "inferences/s",
        "y": "p95 ms",
        "series": {
            result["label"]: [[p["throughput"], p["p95_ms"]] for p in result["points"]] for result in search.results
        },
        "limit": search.latency_budget_ms,
    }
