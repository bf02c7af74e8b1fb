"""Small access helpers shared by the page views."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render

from deployments import policy
from deployments.selectors.deployments import deployment_detail


def require_perm(user, perm: str, message: str) -> None:
    """`perm` in at least one environment; which rows the user then sees is
    the querysets' `.visible_to(user)`."""
    if not policy.can_somewhere(user, perm):
        raise PermissionDenied(message)


def field_for(form, path: str) -> str | None:
    """The form field a domain error's path names ("resources.gpu_cores" -> "gpu_cores"), or None."""
    name = path.split(".")[-1]
    return name if name in form.fields else None


def deployment_or_404(request, deployment_id: int):
    """The deployment with what its page shows, if the user may see it."""
    deployment = deployment_detail(request.user, deployment_id)
    if deployment is None:
        raise Http404("No such deployment.")
    return deployment


# htmx stops polling on this status (django-htmx's HTMX_STOP_POLLING).
STOP_POLLING = 286


def live_page(request, template: str, context: dict, *, finished: bool):
    """A page that follows something under way: the whole page; for htmx's
    poll, the page's `live` fragment while it runs, and once it finished a
    286 that stops the polling and reloads the page (then everything on it
    is stale, not one block)."""
    if request.htmx:
        if finished:
            response = HttpResponse(status=STOP_POLLING)
            response["HX-Refresh"] = "true"
            return response
        return render(request, f"{template}#live", context)
    return render(request, template, context)
