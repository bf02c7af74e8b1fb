"""Triton's statistics extension read through a deployment's endpoint, for
kinds that give no /metrics (SDK v2 online endpoints): per model, the same
counters a /metrics scrape keeps (metrics.parse), so the batching window
treats both alike.

It is read in the minute's scrape round (a Celery beat task), not when a
page is shown: a page then never waits on Azure or fails because an endpoint
is down, and a window needs reads spread over time anyway. It goes to the
address and with the key the health poller keeps, as the console and the
load tests do, so no Azure SDK is loaded for it.

One read reaches one instance of the deployment: with several instances the
figures are those of whichever instance answered, and a window's
differences between two instances' counters mean little (a counter that
went backwards is taken as a restart, see counter_window.py).
"""

from collections import defaultdict

import httpx
from django.conf import settings

from deployments.console import infer
from deployments.loadlab.endpoint import headers_for, serving_deployment
from deployments.loadlab.generator import read_statistics
from workers.targets import counters as triton_counters


class Unreadable(Exception):
    """The endpoint did not give its statistics (down, refused, not JSON)."""


def read(deployment) -> tuple[dict | None, str]:
    """({model: counters}, the endpoint deployment read), or (None, "")
    when no deployment behind the endpoint takes traffic."""
    name = serving_deployment(deployment)
    if not name or not deployment.scoring_uri:
        return None, ""
    url = infer.base_url(deployment) + "/v2/models/stats"
    try:
        answer = httpx.get(
            url, headers=headers_for(deployment, name), timeout=settings.HEALTH_PROBE_TIMEOUT, follow_redirects=False
        )
        answer.raise_for_status()
        payload = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from None
    return per_model(payload), name


def per_model(payload: dict) -> dict[str, dict[str, float]]:
    """The statistics answer as {model: counters}, its versions summed."""
    entries = defaultdict(list)
    for entry in payload.get("model_stats", []):
        entries[entry.get("name", "")].append(entry)
    counters = {}
    for model, stats in entries.items():
        one = {"model_stats": stats}
        # Counts from the load generator's reader; times (request, queue, compute) as the rollout gates read them.
        totals = read_statistics(one)
        times = triton_counters.from_statistics(one)
        counters[model] = {
            "success": float(totals["success_count"]),
            "failure": float(totals["fail_count"]),
            "inferences": float(totals["inference_count"]),
            "executions": float(totals["execution_count"]),
            "request_us": times.request_us,
            "queue_us": times.queue_us,
            "compute_us": times.compute_us,
        }
    return counters
