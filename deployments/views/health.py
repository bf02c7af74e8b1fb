from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from deployments.health.metrics import series
from deployments.models import Deployment
from deployments.selectors.health import RANGES, range_key

CHARTS = {
    "requests": ("Requests and failures per second", "req/s", ["requests_per_s", "failures_per_s"]),
    "latency": ("Time per request: queue vs compute", "ms", ["queue_ms", "compute_ms"]),
    "p95": ("p95 request latency", "ms", ["p95_ms"]),
    "utilisation": ("CPU and GPU utilisation", "share", ["cpu_utilization", "gpu_utilization"]),
}


@require_safe
def chart_data(request, deployment_id: int, chart: str):
    # The bare row: a chart needs neither the operations nor the repository.
    deployment = Deployment.objects.visible_to(request.user).filter(pk=deployment_id).first()
    if deployment is None or chart not in CHARTS:
        raise Http404("No such chart.")
    title, unit, names = CHARTS[chart]
    key = range_key(request.GET.get("range", ""))
    hours = RANGES[key][1]
    # A week of minutes is averaged into quarter-hours: 672 points a series.
    bucket = 15 if hours > 24 else 1
    data = {}
    for name in names:
        for model, points in series(deployment, name, hours=hours, bucket_minutes=bucket).items():
            label = f"{model} {name.removesuffix('_ms').removesuffix('_per_s')}" if len(names) > 1 else model
            data[label] = points
    end = int(timezone.now().timestamp())
    return JsonResponse(
        {
            "title": title,
            "unit": unit,
            "series": data,
            # The window the chart spans whatever the points: a lone point is
            # drawn in its hour or day, not on an axis stretched around it.
            "start": end - hours * 3600,
            "end": end,
            "bucket_seconds": bucket * 60,
        }
    )
