from django.shortcuts import render
from django.views.decorators.http import require_safe

from deployments import policy
from deployments.selectors.overview import fleet, overview_summary


@require_safe
def overview(request):
    context = {"summary": overview_summary(request.user)}
    if policy.can_somewhere(request.user, "deployments.view_deployment"):
        context["fleet"] = fleet(request.user)
    return render(request, "deployments/overview.html", context)
