"""A rollout's page (timeline, steps with their figures and verdicts,
baseline-versus-candidate charts), the form that starts one, and the
actions people take on it."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.forms import RolloutForm
from deployments.models import Rollout
from deployments.rollouts.plan import GATES, observation_interval
from deployments.selectors.rollouts import chart_series, rollout_or_none, timeline
from deployments.services.permissions import require
from deployments.services.rollouts import rollout_abort, rollout_create, rollout_pause, rollout_promote, rollout_resume
from deployments.views.access import deployment_or_404, field_for, live_page

CHARTS = {
    "failure_rate": ("Failure rate", "share"),
    "p95_ms": ("p95 latency", "ms"),
    "p99_ms": ("p99 latency", "ms"),
    "queue_share": ("Queue share of request time", "share"),
}


def _rollout_or_404(request, rollout_id: int) -> Rollout:
    rollout = rollout_or_none(request.user, rollout_id)
    if rollout is None:
        raise Http404("No such rollout.")
    return rollout


@require_safe
def detail(request, rollout_id: int):
    rollout = _rollout_or_404(request, rollout_id)
    environment = rollout.deployment.target.environment
    context = {
        "rollout": rollout,
        "deployment": rollout.deployment,
        "steps": list(rollout.steps.all()),
        "events": timeline(rollout),
        "can_steer": policy.can(request.user, "deployments.add_deployment", environment),
        "sources": rollout.deployment.target.descriptor.rollout_signals,
        "charts": CHARTS,
    }
    return live_page(request, "deployments/rollout_detail.html", context, finished=rollout.status in Rollout.TERMINAL)


@require_safe
def chart(request, rollout_id: int, figure: str):
    rollout = _rollout_or_404(request, rollout_id)
    if figure not in CHARTS:
        raise Http404("No such chart.")
    title, unit = CHARTS[figure]
    return JsonResponse({"title": title, "unit": unit, "series": chart_series(rollout, figure)})


@require_http_methods(["GET", "POST"])
def create(request, deployment_id: int):
    deployment = deployment_or_404(request, deployment_id)
    require(request.user, "deployments.add_deployment", "Starting a rollout", environment=deployment.target.environment)
    form = RolloutForm(request.POST or None, deployment=deployment)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rollout = rollout_create(
                deployment=deployment,
                actor=request.user,
                repository=data["repository"],
                changes=form.changes(),
                steps=data["steps"],
                gates=form.gates(),
                golden_requests=form.golden_requests(),
                on_rollback=data["on_rollback"],
            )
        except DomainError as exc:
            form.add_error(field_for(form, _form_field(exc.path)), exc.message)
        else:
            messages.success(
                request,
                f"Rollout #{rollout.pk} {'waits for approval' if rollout.status == 'pending_approval' else 'started'}.",
            )
            return redirect("rollout", rollout_id=rollout.pk)
    return render(
        request,
        "deployments/rollout_form.html",
        {
            "form": form,
            "deployment": deployment,
            "gates": GATES,
            "sources": deployment.target.descriptor.rollout_signals,
            "interval": observation_interval(),
        },
        status=400 if form.errors else 200,
    )


def _form_field(path: str) -> str:
    """A plan's path ("steps[1].traffic", "gates.p95_ms.floor") -> the form field that holds it."""
    head = path.split("[")[0].split(".")[0]
    if head == "gates":
        parts = path.split(".")
        return f"{parts[1]}_{parts[2]}" if len(parts) > 2 else "gates"
    return head


def _act(request, rollout_id: int, service, done: str, **extra):
    rollout = _rollout_or_404(request, rollout_id)
    try:
        service(rollout=rollout, actor=request.user, **extra)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("rollout", rollout_id=rollout.pk)


@require_POST
def pause(request, rollout_id: int):
    return _act(request, rollout_id, rollout_pause, "Paused: traffic stays where it is.")


@require_POST
def resume(request, rollout_id: int):
    return _act(request, rollout_id, rollout_resume, "Resumed: the step's bake starts again.")


@require_POST
def promote(request, rollout_id: int):
    return _act(request, rollout_id, rollout_promote, "Promoting now: the candidate takes all the traffic.")


@require_POST
def abort(request, rollout_id: int):
    reason = request.POST.get("reason", "")
    return _act(request, rollout_id, rollout_abort, "Aborting: traffic goes back to the baseline.", reason=reason)
