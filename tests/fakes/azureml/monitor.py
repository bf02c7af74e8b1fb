"""Azure Monitor's metrics API for online endpoints, as the fake v2 serves it.

``GET {endpoint resource id}/providers/Microsoft.Insights/metrics`` (ARM;
azure-mgmt-monitor's ``metrics.list``, api-version 2024-02-01) answered from
the requests the fake's scoring front end really served: each one recorded
with its deployment, status, the model's status and its duration. The
front end is modelled as one emitter that writes, per minute, one sample per
combination of dimension values: ``RequestsPerMinute`` = how many requests
had that combination; ``RequestLatency`` = their mean duration and
``RequestLatency_P50/P90/P95/P99`` = their percentiles, per deployment. A
query then aggregates those samples per time grain the way Azure Monitor
aggregates pre-aggregated samples (average = sum / count of samples, total =
sum, minimum, maximum, count).

What it honours: ``timespan`` ("start/end"), ``interval`` (PT1M ... P1D, FULL),
``metricnames`` (comma separated, case-insensitive; an unknown one is
Azure's 400 "Failed to find metric configuration ..."), ``aggregation``,
``$filter`` on dimensions (``eq``/``ne``/``sw``, ``'*'`` to split, ``and``
between dimensions, ``or`` within one; every dimension named is split on and
comes back in ``metadatavalues``, lower-cased as Azure sends it), ``top``
(10 series by default when filtered), ``metricnamespace``. Samples become
visible ``delay_s`` after the request (ingestion delay); until then their
minute reads like a minute without data.

The metric names, units and dimensions are Azure's (see ``METRICS``); the
REST shape follows the Azure/azure-rest-api-specs example
``specification/monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/examples/GetMetric.json``.
"""

from __future__ import annotations

import datetime
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
AGGREGATIONS = ("average", "minimum", "maximum", "total", "count")
DEFAULT_TOP = 10


@dataclass(frozen=True)
class MetricSpec:
    name: str
    display: str
    unit: str
    dimensions: tuple[str, ...]
    description: str


# "Supported metrics for Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
# (learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
# microsoft-machinelearningservices-workspaces-onlineendpoints-metrics): names in
# the REST API, units, dimensions; all sampled at PT1M with Average as the
# default aggregation. Descriptions are the fake's own short wording.
METRICS = {
    spec.name.lower(): spec
    for spec in (
        MetricSpec("ConnectionsActive", "Connections Active", "Count", (), "Concurrent TCP connections from clients."),
        MetricSpec(
            "DataCollectionErrorsPerMinute",
            "Data Collection Errors Per Minute",
            "Count",
            ("deployment", "reason", "type"),
            "Data collection events dropped per minute.",
        ),
        MetricSpec(
            "DataCollectionEventsPerMinute",
            "Data Collection Events Per Minute",
            "Count",
            ("deployment", "type"),
            "Data collection events processed per minute.",
        ),
        MetricSpec("NetworkBytes", "Network Bytes", "BytesPerSecond", (), "Bytes per second served for the endpoint."),
        MetricSpec(
            "NewConnectionsPerSecond", "New Connections Per Second", "CountPerSecond", (), "New TCP connections."
        ),
        MetricSpec(
            "RequestLatency", "Request Latency", "Milliseconds", ("deployment",), "Mean time to answer a request."
        ),
        MetricSpec(
            "RequestLatency_P50", "Request Latency P50", "Milliseconds", ("deployment",), "P50 request latency."
        ),
        MetricSpec(
            "RequestLatency_P90", "Request Latency P90", "Milliseconds", ("deployment",), "P90 request latency."
        ),
        MetricSpec(
            "RequestLatency_P95", "Request Latency P95", "Milliseconds", ("deployment",), "P95 request latency."
        ),
        MetricSpec(
            "RequestLatency_P99", "Request Latency P99", "Milliseconds", ("deployment",), "P99 request latency."
        ),
        MetricSpec(
            "RequestsPerMinute",
            "Requests Per Minute",
            "Count",
            ("deployment", "statusCode", "statusCodeClass", "modelStatusCode"),
            "Requests sent to the online endpoint within a minute.",
        ),
    )
}
_PERCENTILES = {"RequestLatency_P50": 50, "RequestLatency_P90": 90, "RequestLatency_P95": 95, "RequestLatency_P99": 99}
_GRAINS = {
    "PT1M": 60,
    "PT5M": 300,
    "PT15M": 900,
    "PT30M": 1800,
    "PT1H": 3600,
    "PT6H": 21600,
    "PT12H": 43200,
    "P1D": 86400,
}


class MetricsError(Exception):
    """Answered as the metrics API answers errors: a flat ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Served:
    """What the metrics need of one request the scoring front end answered."""

    at: datetime.datetime
    deployment: str | None
    status: int
    model_status: int | None
    duration_ms: float


@dataclass(frozen=True)
class _Sample:
    minute: datetime.datetime
    metric: str
    dims: dict[str, str]
    value: float


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (so p99 >= p95 >= p50 on the same values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def samples(served: Iterable[Served]) -> list[_Sample]:
    """The front end's per-minute samples for the requests it served."""
    counts: dict[tuple, int] = defaultdict(int)
    durations: dict[tuple, list[float]] = defaultdict(list)
    for request in served:
        minute = request.at.replace(second=0, microsecond=0)
        deployment = request.deployment or ""  # refused before routing: no deployment to name
        status = str(request.status)
        model = "" if request.model_status is None else str(request.model_status)
        counts[(minute, deployment, status, f"{status[0]}xx", model)] += 1
        if request.deployment:
            durations[(minute, deployment)].append(request.duration_ms)
    out = [
        _Sample(
            minute,
            "RequestsPerMinute",
            {"deployment": dep, "statusCode": code, "statusCodeClass": klass, "modelStatusCode": model},
            float(n),
        )
        for (minute, dep, code, klass, model), n in counts.items()
    ]
    for (minute, dep), values in durations.items():
        out.append(_Sample(minute, "RequestLatency", {"deployment": dep}, sum(values) / len(values)))
        for name, pct in _PERCENTILES.items():
            out.append(_Sample(minute, name, {"deployment": dep}, percentile(values, pct)))
    return out


# ---------------------------------------------------------------------- the query


def _parse_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timespan(value: str | None, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    if not value:
        return now - datetime.timedelta(hours=1), now  # Azure's default: the last hour
    try:
        start_text, end_text = value.split("/")
        start, end = _parse_time(start_text), _parse_time(end_text)
    except ValueError:
        problem = f"Invalid timespan '{value}': expected 'start/end' in ISO 8601."
        raise MetricsError(400, "BadRequest", problem) from None
    if end <= start:
        raise MetricsError(400, "BadRequest", f"Invalid timespan '{value}': its end is not after its start.")
    return start, end


@dataclass(frozen=True)
class _Condition:
    dimension: str  # canonical spelling
    op: str  # eq | ne | sw
    value: str


_ATOM = re.compile(r"^\s*(\w+)\s+(eq|ne|sw)\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


def _parse_filter(text: str | None, specs: list[MetricSpec]) -> dict[str, list[_Condition]]:
    """Conditions per dimension (alternatives of one dimension are OR-ed, dimensions AND-ed)."""
    if not text:
        return {}
    supported = {d.lower(): d for spec in specs for d in spec.dimensions}
    grouped: dict[str, list[_Condition]] = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        for atom in re.split(r"\s+or\s+", clause.strip().strip("()"), flags=re.IGNORECASE):
            match = _ATOM.match(atom.strip("()"))
            if match is None:
                raise MetricsError(400, "BadRequest", f"Invalid $filter '{text}': cannot read '{atom.strip()}'.")
            name, op, value = match.group(1), match.group(2).lower(), match.group(3).replace("''", "'")
            for spec in specs:
                if name.lower() not in {d.lower() for d in spec.dimensions}:
                    # Wording is the fake's; Azure refuses dimensions a metric does not have
                    # unless ValidateDimensions=false.
                    raise MetricsError(
                        400,
                        "BadRequest",
                        f"Metric: {spec.name} does not support requested dimension combination: {name}, "
                        f"supported ones are: {','.join(spec.dimensions) or '(none)'}",
                    )
            grouped.setdefault(supported[name.lower()], []).append(_Condition(supported[name.lower()], op, value))
    return grouped


def _matches(dims: dict[str, str], conditions: dict[str, list[_Condition]]) -> bool:
    for dimension, alternatives in conditions.items():
        value = dims.get(dimension, "").lower()
        if not any(_holds(value, condition) for condition in alternatives):
            return False
    return True


def _holds(value: str, condition: _Condition) -> bool:
    wanted = condition.value.lower()
    if condition.op == "eq":
        return wanted == "*" or value == wanted
    if condition.op == "ne":
        return value != wanted
    return value.startswith(wanted)


def _aggregate(values: list[float], aggregations: list[str]) -> dict[str, float]:
    if not values:
        # A minute without samples (or not ingested yet): counts read 0, the rest are absent.
        return {name: 0.0 for name in aggregations if name in ("total", "count")}
    summary = {
        "average": sum(values) / len(values),
        "minimum": min(values),
        "maximum": max(values),
        "total": sum(values),
        "count": float(len(values)),
    }
    return {name: summary[name] for name in aggregations}


def answer(
    *,
    resource_id: str,
    location: str,
    served: Iterable[Served],
    args: dict[str, str],
    now: datetime.datetime,
    delay_s: float = 0.0,
) -> dict:
    """The metrics API's 200 body for ``args`` (the query string), or MetricsError."""
    args = {key.lower(): value for key, value in args.items()}
    names = [n.strip() for n in (args.get("metricnames") or "").split(",") if n.strip()]
    if not names:
        names = ["ConnectionsActive"]  # Azure answers the resource's default metric
    specs: list[MetricSpec] = []
    for name in names:
        spec = METRICS.get(name.lower())
        if spec is None:
            # Azure's answer, as users quote it (Azure/azure-sdk-for-net #29584).
            valid = ",".join(s.name for s in METRICS.values())
            raise MetricsError(
                400,
                "BadRequest",
                "Failed to find metric configuration for provider: Microsoft.MachineLearningServices, "
                f"resource Type: workspaces/onlineEndpoints, metric: {name}, Valid metrics: {valid}",
            )
        specs.append(spec)
    namespace = args.get("metricnamespace")
    if namespace and namespace.lower() != NAMESPACE.lower():
        raise MetricsError(400, "BadRequest", f"Metric namespace '{namespace}' is not valid for this resource.")
    start, end = _timespan(args.get("timespan"), now)
    interval = (args.get("interval") or "PT1M").upper()
    if interval == "FULL":
        grain = (end - start).total_seconds()
        first = start
    elif interval in _GRAINS:
        grain = _GRAINS[interval]
        epoch = int(start.timestamp())
        first = datetime.datetime.fromtimestamp(epoch - epoch % grain, datetime.UTC)
    else:
        raise MetricsError(400, "BadRequest", f"Invalid time grain '{interval}'. Supported: {', '.join(_GRAINS)}.")
    aggregations = [a.strip().lower() for a in (args.get("aggregation") or "average").split(",") if a.strip()]
    for aggregation in aggregations:
        if aggregation not in AGGREGATIONS:
            raise MetricsError(400, "BadRequest", f"Invalid aggregation '{aggregation}'.")
    conditions = _parse_filter(args.get("$filter"), specs)
    split = list(conditions)
    top = int(args.get("top") or DEFAULT_TOP)

    buckets: list[datetime.datetime] = []
    moment = first
    while moment < end:
        buckets.append(moment)
        moment += datetime.timedelta(seconds=grain)

    visible_before = now - datetime.timedelta(seconds=delay_s)
    ingested = [request for request in served if request.at <= visible_before]
    all_samples = samples(ingested)

    value = []
    for spec in specs:
        series: dict[tuple[str, ...], dict[datetime.datetime, list[float]]] = defaultdict(lambda: defaultdict(list))
        for sample in all_samples:
            if sample.metric != spec.name or not (first <= sample.minute < end):
                continue
            if not _matches(sample.dims, conditions):
                continue
            index = min(int((sample.minute - first).total_seconds() // grain), len(buckets) - 1)
            series[tuple(sample.dims.get(d, "") for d in split)][buckets[index]].append(sample.value)
        if not split and not series:
            series[()] = defaultdict(list)  # unsplit: one series even without data
        keys = sorted(series, key=lambda k: -sum(sum(v) for v in series[k].values()))[:top]
        value.append(
            {
                "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{spec.name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": spec.name, "localizedValue": spec.display},
                "displayDescription": spec.description,
                "unit": spec.unit,
                "timeseries": [
                    {
                        "metadatavalues": [
                            {"name": {"value": d.lower(), "localizedValue": d.lower()}, "value": v}
                            for d, v in zip(split, key, strict=True)
                        ],
                        "data": [
                            {"timeStamp": _iso(bucket), **_aggregate(series[key].get(bucket, []), aggregations)}
                            for bucket in buckets
                        ],
                    }
                    for key in keys
                ],
                "errorCode": "Success",
            }
        )
    return {
        "cost": len(buckets) * len(specs),
        "timespan": f"{_iso(start)}/{_iso(end)}",
        "interval": interval,
        "value": value,
        "namespace": NAMESPACE,
        "resourceregion": location,
    }
