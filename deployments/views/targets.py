from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.forms import TargetForm
from deployments.models import Target
from deployments.selectors.audit_log import object_history
from deployments.services.targets import target_adopt_request, target_create, target_test_request, target_update
from deployments.views.access import field_for, require_perm
from workers.targets import registry
from workers.targets.base import Capability

STOP_POLLING = 286


@require_safe
def targets(request):
    require_perm(request.user, "deployments.view_target", "Seeing targets needs the viewer role.")
    return render(
        request,
        "deployments/targets.html",
        {
            "targets": Target.objects.visible_to(request.user).select_related("environment"),
            "can_add": policy.can(request.user, "deployments.add_target"),
        },
    )


@require_http_methods(["GET", "POST"])
def create(request):
    require_perm(request.user, "deployments.add_target", "Creating targets needs the admin role.")
    form = TargetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            target = target_create(
                actor=request.user,
                name=data["name"],
                kind=data["kind"],
                environment=data["environment"],
                auth_method=data["auth_method"],
                settings=form.settings(),
                secrets=form.secrets(),
            )
        except DomainError as exc:
            form.add_error(field_for(form, exc.path), exc.message)
        else:
            messages.success(request, f"Target “{target.name}” created. Test its connection below.")
            return redirect("target", target_id=target.pk)
    return render(
        request,
        "deployments/target_form.html",
        {"form": form, "kinds": registry.offered()},
        status=400 if form.errors else 200,
    )


def _visible_or_404(request, target_id: int) -> Target:
    target = Target.objects.visible_to(request.user).select_related("environment").filter(pk=target_id).first()
    if target is None:
        raise Http404("No such target.")
    return target


def _administers(request, target: Target) -> bool:
    """Testing and adopting start work on a worker: for admins of the target's environment."""
    return policy.can(request.user, "deployments.change_target", target.environment)


def _connection(request, target: Target) -> dict:
    return {"target": target, "can_test": _administers(request, target)}


@require_http_methods(["GET", "POST"])
def detail(request, target_id: int):
    target = _visible_or_404(request, target_id)
    can_change = policy.can(request.user, "deployments.change_target")
    if request.htmx and request.method == "GET":
        response = render(request, "deployments/target_detail.html#connection", _connection(request, target))
        if target.test_state != "running":
            response.status_code = STOP_POLLING
        return response
    form = TargetForm(request.POST or None, initial=TargetForm.initial_for(target), kinds=[target.descriptor])
    for locked in ("name", "kind", "environment"):
        form.fields[locked].disabled = True
    if request.method == "POST":
        require_perm(request.user, "deployments.change_target", "Changing targets needs the admin role.")
        if form.is_valid():
            try:
                target_update(
                    actor=request.user,
                    target=target,
                    settings=form.settings(),
                    auth_method=form.cleaned_data["auth_method"],
                    secrets=form.secrets(),
                )
            except DomainError as exc:
                form.add_error(field_for(form, exc.path), exc.message)
            else:
                messages.success(request, "Target saved.")
                return redirect("target", target_id=target.pk)
    return render(
        request,
        "deployments/target_detail.html",
        {
            "target": target,
            "form": form,
            "can_change": can_change,
            **_connection(request, target),
            "can_adopt": target.descriptor.has(Capability.ADOPT) and _administers(request, target),
            **object_history(request.user, target),
        },
        status=400 if form.errors else 200,
    )


@require_POST
def test(request, target_id: int):
    target = _visible_or_404(request, target_id)
    target_test_request(actor=request.user, target=target)
    target.refresh_from_db()
    if request.htmx:
        return render(request, "deployments/target_detail.html#connection", _connection(request, target))
    return redirect("target", target_id=target.pk)


@require_POST
def adopt(request, target_id: int):
    target = _visible_or_404(request, target_id)
    # A refusal (a kind without adoption) is told by the pages' error boundary.
    target_adopt_request(actor=request.user, target=target)
    messages.success(request, "Listing the workspace's webservices: unknown ones appear under Deployments as adopted.")
    return redirect("target", target_id=target.pk)
