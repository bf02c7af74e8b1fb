from django.shortcuts import render

from deployments.selectors.overview import overview_summary


def overview(request):
    return render(request, "deployments/overview.html", {"summary": overview_summary(request.user)})
