from django.shortcuts import render
from django.views.decorators.http import require_safe

from deployments import policy
from deployments.models import Deployment
from deployments.selectors.fleet import FleetFilters, fleet
from deployments.selectors.needs_you import needs_you
from deployments.selectors.overview import overview_summary
from deployments.views.filters import filter_fields


@require_safe
def overview(request):
    """The wall-screen page. Its poll (htmx, every few seconds) gets the live
    part only: the fleet, what needs the viewer and the worker card."""
    can_see_deployments = policy.can_somewhere(request.user, "deployments.view_deployment")
    filters = FleetFilters.from_query(request.GET)
    context = {
        "summary": overview_summary(request.user),
        "filters": filters,
        "needs": needs_you(request.user),
    }
    if can_see_deployments:
        context["fleet"] = fleet(request.user, filters)
        live = [(value, label) for value, label in Deployment.Status.choices if value not in Deployment.TERMINAL]
        context["filter_fields"] = filter_fields(request.user, vars(filters), live)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "deployments/overview.html#live", context)
    return render(request, "deployments/overview.html", context)
