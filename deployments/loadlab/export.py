"""A load test's points as CSV with perf_analyzer's column names (its -f
output), so the files drop into whatever already reads perf_analyzer's.

perf_analyzer's latencies are microseconds, and its server-side columns are
averages per request; a few columns it has no use for here (client send and
receive, which it splits out of the client latency) are left out rather than
made up. Columns it does not have come last: whether the point was stable,
how many windows it took, the requests and errors, and the average batch
Triton executed.
"""

import csv
import io

from django.http import HttpResponse

COLUMNS = [
    ("Concurrency", lambda p: p["concurrency"]),
    ("Inferences/Second", lambda p: p["throughput"]),
    ("Avg latency", lambda p: _us(p["mean_ms"])),
    ("p50 latency", lambda p: _us(p["p50_ms"])),
    ("p90 latency", lambda p: _us(p["p90_ms"])),
    ("p95 latency", lambda p: _us(p["p95_ms"])),
    ("p99 latency", lambda p: _us(p["p99_ms"])),
    ("Server Queue", lambda p: p["server"].get("queue_us", "")),
    ("Server Compute Input", lambda p: p["server"].get("compute_input_us", "")),
    ("Server Compute Infer", lambda p: p["server"].get("compute_infer_us", "")),
    ("Server Compute Output", lambda p: p["server"].get("compute_output_us", "")),
    ("Stable", lambda p: "yes" if p["stable"] else "no"),
    ("Windows", lambda p: p["trials"]),
    ("Requests", lambda p: p["requests"]),
    ("Errors", lambda p: p["errors"]),
    ("Average Batch", lambda p: p["server"].get("batch") or ""),
]


def _us(ms: float) -> int:
    return round(ms * 1000)


def points_csv(test) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _ in COLUMNS])
    for point in test.points:
        writer.writerow([value(point) for _, value in COLUMNS])
    return out.getvalue()


def csv_response(test) -> HttpResponse:
    """The CSV as a download named after the test (the page's link and the API's)."""
    response = HttpResponse(points_csv(test), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="loadtest-{test.pk}.csv"'
    return response
