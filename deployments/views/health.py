from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from deployments.health.metrics import series
from deployments.models import Deployment
from deployments.selectors.overview import fleet
from deployments.views.access import require_perm

CHARTS = {
    "requests": ("Requests per second", "req/s", ["requests_per_s"]),
    "latency": ("Time per request: queue vs compute", "ms", ["queue_ms", "compute_ms"]),
    "utilisation": ("CPU and GPU utilisation", "share", ["cpu_utilization", "gpu_utilization"]),
}


@require_safe
def chart_data(request, deployment_id: int, chart: str):
    # The bare row: a chart needs neither the operations nor the repository.
    deployment = Deployment.objects.visible_to(request.user).filter(pk=deployment_id).first()
    if deployment is None or chart not in CHARTS:
        raise Http404("No such chart.")
    title, unit, names = CHARTS[chart]
    data = {}
    for name in names:
        for model, points in series(deployment, name).items():
            label = f"{model} {name.removesuffix('_ms').removesuffix('_per_s')}" if len(names) > 1 else model
            data[label] = points
    return JsonResponse({"title": title, "unit": unit, "series": data})


@require_safe
def fleet_fragment(request):
    require_perm(request.user, "deployments.view_deployment", "Seeing deployments needs the viewer role.")
    return render(request, "deployments/overview.html#fleet", {"fleet": fleet(request.user)})
