"""Where a deployment's per-model Triton counters come from, asked of its
kind's descriptor (never of the kind's name), and in plain words why there
are none where a kind gives neither source.

- METRICS: the kind publishes each Triton's Prometheus /metrics to the
  dashboard (the local target); the minute's scrape reads it.
- STATISTICS: the kind's endpoint passes Triton's /v2 API through and routes
  to one of its deployments by the azureml-model-deployment header (SDK v2
  online endpoints): the scrape reads the statistics extension,
  `GET /v2/models/stats`, through the endpoint, naming the deployment that
  takes the traffic. Azure passes no /metrics through.
- NONE: everything else, with the reason.
"""

from workers.targets.base import Capability
from workers.targets.descriptor import Probe

METRICS = "metrics"
STATISTICS = "statistics"
NONE = ""

DESCRIPTIONS = {
    METRICS: "Triton's /metrics (nv_inference_count, nv_inference_exec_count), read every minute",
    STATISTICS: (
        "Triton's statistics extension (inference_count, execution_count), read every minute through the endpoint "
        "with the azureml-model-deployment header of the deployment taking the traffic"
    ),
}

# Where a deployment page's charts come from, in a few words.
CHART_SOURCES = {
    METRICS: "from Triton's /metrics",
    STATISTICS: "from Triton's statistics extension, through the endpoint",
}


def source_for(deployment) -> str:
    descriptor = deployment.target.descriptor
    if descriptor.has(Capability.METRICS):
        return METRICS
    reaches_triton = descriptor.probe_for(deployment.mode) == Probe.TRITON_HTTP
    if reaches_triton and descriptor.probe_each_deployment:
        return STATISTICS
    return NONE


def why_none(deployment) -> str:
    """Why a deployment whose source is NONE has no counters."""
    descriptor = deployment.target.descriptor
    label = deployment.target.kind_label
    if descriptor.probe_for(deployment.mode) != Probe.TRITON_HTTP:
        if deployment.mode == deployment.Mode.ENTRY_SCRIPT and descriptor.probe == Probe.TRITON_HTTP:
            return (
                f"In entry-script mode a {label} address answers /score alone: Triton's /metrics and statistics "
                "stay behind the script."
            )
        return f"{label} targets run no Triton the dashboard can reach ({descriptor.note or 'nothing to read'})."
    if descriptor.end_of_support:
        return (
            f"{label} passes no Triton /metrics through, and the dashboard reads Triton's statistics only through "
            f"endpoints that name a deployment by header (SDK v2): SDK v1's support ended on "
            f"{descriptor.end_of_support}. Moving this service to an SDK v2 endpoint shows its batching."
        )
    return f"{label} targets give neither Triton's /metrics nor its statistics extension to the dashboard."


# The Overview's figures: request rate, error rate and p95 latency.
FIGURES = ("requests", "errors", "p95")


def single_instance(deployment) -> bool:
    """Whether one statistics read covers the whole deployment: the
    extension answers for the one instance the request reached."""
    return int((deployment.target.settings or {}).get("instance_count", 1) or 1) == 1


def figures_given(deployment) -> dict[str, str]:
    """For each of FIGURES, "" where the kind gives it to the minute's scrape,
    otherwise why not, in plain words (shown on the tile, never as a zero)."""
    source = source_for(deployment)
    if source == METRICS:
        return dict.fromkeys(FIGURES, "")
    if source == STATISTICS:
        no_percentile = (
            "Triton's statistics extension, which is what this kind passes through, keeps sums, not percentiles."
        )
        if not single_instance(deployment):
            several = (
                "Triton's statistics are read from one instance at a time, and this target runs several: "
                "they give no rate for the whole deployment."
            )
            return {"requests": several, "errors": several, "p95": no_percentile}
        return {"requests": "", "errors": "", "p95": no_percentile}
    return dict.fromkeys(FIGURES, why_none(deployment))
