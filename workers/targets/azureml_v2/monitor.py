"""One online deployment's figures over a window, from Azure Monitor's
metrics for its endpoint (Azure does not pass Triton's /metrics through an
online endpoint, so a rollout compares deployments with these).

Reads the platform metrics of the endpoint resource,
``Microsoft.MachineLearningServices/workspaces/onlineEndpoints``, through
ARM (``{endpoint id}/providers/Microsoft.Insights/metrics``, azure-mgmt-monitor's
``MonitorManagementClient.metrics.list``), at PT1M grain:

- ``RequestsPerMinute`` (Count; dimensions ``deployment``, ``statusCode``,
  ``statusCodeClass``, ``modelStatusCode``), aggregated as Total and split by
  ``statusCodeClass``: requests and the 4xx/5xx among them;
- ``RequestLatency_P95`` and ``RequestLatency_P99`` (Milliseconds; dimension
  ``deployment``), aggregated as Average.

Both filtered on ``deployment eq '<name>'``. Names, units and dimensions:
"Supported metrics for Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
(the deployment resource, ``.../onlineEndpoints/deployments``, has the
percentiles too but without any dimension, and counts requests by
``envoy_response_code`` only). More in docs/facts.md.

Azure keeps a percentile per minute, not the latencies behind it: the
window's p95/p99 here are the per-minute values weighted by that minute's
requests, an estimate of the window's percentile, not the percentile itself.
Azure Monitor ingests metrics minutes after the requests: a window that ends
now reads its last minutes as having no requests yet.

One attempt per call (``retry_total=0``): a throttled or failing read is a
transient TargetError carrying Azure's Retry-After, and the caller's engine
retries it; an unknown metric or a refused filter is a permanent one.
"""

from collections import defaultdict
from datetime import UTC, datetime

from workers.targets.azure.errors import translate_error

ARM = "https://management.azure.com"
NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
REQUESTS = "RequestsPerMinute"
P95 = "RequestLatency_P95"
P99 = "RequestLatency_P99"
GRAIN = "PT1M"


def deployment_figures(
    credential,
    *,
    subscription_id: str,
    resource_group: str,
    workspace: str,
    endpoint: str,
    deployment: str,
    start: datetime,
    end: datetime,
    base_url: str | None = None,
) -> dict:
    """``{"requests": int, "errors": {"4xx": int, "5xx": int}, "p95_ms": float | None,
    "p99_ms": float | None, "source": str}`` for ``deployment`` of ``endpoint``
    between ``start`` and ``end`` (aware datetimes; naive ones are taken as UTC).
    Percentiles are None when no minute of the window has one. Raises TargetError."""
    # Imported here: only a worker that reads Azure metrics loads the SDK.
    from azure.mgmt.monitor import MonitorManagementClient

    # Without a leading "/", as the REST spec's examples spell resourceUri.
    resource = (
        f"subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}/onlineEndpoints/{endpoint}"
    )
    timespan = f"{_iso(start)}/{_iso(end)}"
    name = deployment.replace("'", "''")  # OData quoting; Azure's deployment names have no quotes anyway
    try:
        with MonitorManagementClient(credential, subscription_id, base_url=base_url or ARM, retry_total=0) as client:
            counts = client.metrics.list(
                resource,
                timespan=timespan,
                interval=GRAIN,
                metricnames=REQUESTS,
                aggregation="Total",
                filter=f"deployment eq '{name}' and statusCodeClass eq '*'",
                metricnamespace=NAMESPACE,
            )
            latency = client.metrics.list(
                resource,
                timespan=timespan,
                interval=GRAIN,
                metricnames=f"{P95},{P99}",
                aggregation="Average",
                filter=f"deployment eq '{name}'",
                metricnamespace=NAMESPACE,
            )
    except Exception as exc:
        translated = translate_error(exc, f"reading Azure Monitor metrics of {endpoint}/{deployment}")
        if translated is None:
            raise
        raise translated from exc

    by_class: dict[str, float] = defaultdict(float)
    per_minute: dict[datetime, float] = defaultdict(float)
    for metric in counts.value:
        for series in metric.timeseries or ():
            klass = _dimension(series, "statusCodeClass")
            for point in series.data or ():
                by_class[klass] += point.total or 0.0
                per_minute[point.time_stamp] += point.total or 0.0
    percentiles = {}
    for metric in latency.value:
        percentiles[metric.name.value.lower()] = _weighted(
            [(point.time_stamp, point.average) for series in metric.timeseries or () for point in series.data or ()],
            per_minute,
        )
    return {
        "requests": round(sum(by_class.values())),
        "errors": {"4xx": round(by_class.get("4xx", 0.0)), "5xx": round(by_class.get("5xx", 0.0))},
        "p95_ms": percentiles.get(P95.lower()),
        "p99_ms": percentiles.get(P99.lower()),
        "source": (
            f"Azure Monitor metrics {REQUESTS} (Total by statusCodeClass), {P95} and {P99} (Average, "
            f"weighted by requests) of onlineEndpoints/{endpoint}, deployment '{deployment}', {GRAIN}, {timespan}"
        ),
    }


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dimension(series, wanted: str) -> str:
    # Azure sends dimension names lower-cased in metadatavalues, whatever the filter's spelling.
    for item in series.metadatavalues or ():
        if item.name is not None and (item.name.value or "").lower() == wanted.lower():
            return (item.value or "").lower()
    return ""


def _weighted(points: list[tuple[datetime, float | None]], weights: dict[datetime, float]) -> float | None:
    """The per-minute values weighted by the minute's requests; a plain mean
    where no minute with a value has counted requests (yet)."""
    present = [(moment, value) for moment, value in points if value is not None]
    if not present:
        return None
    weight = sum(weights.get(moment, 0.0) for moment, _ in present)
    if weight <= 0:
        return sum(value for _, value in present) / len(present)
    return sum(value * weights.get(moment, 0.0) for moment, value in present) / weight
