from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.forms import EnvironmentForm
from deployments.models import Environment, EnvironmentMembership
from deployments.selectors.audit_log import object_history
from deployments.services.environments import (
    environment_create,
    environment_update,
    membership_remove,
    membership_set,
)
from deployments.views.access import field_for, require_perm


@require_safe
def environments(request):
    require_perm(request.user, "deployments.view_environment", "Seeing environments needs the viewer role.")
    rows = Environment.objects.visible_to(request.user).select_related("approver_group")
    return render(
        request,
        "deployments/environments.html",
        {"environments": rows, "can_add": policy.can(request.user, "deployments.add_environment")},
    )


@require_http_methods(["GET", "POST"])
def create(request):
    require_perm(request.user, "deployments.add_environment", "Creating environments needs the admin role.")
    form = EnvironmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            environment = environment_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                policy=form.policy(),
                webhook_secret=form.cleaned_data["webhook_secret"],
            )
        except DomainError as exc:
            form.add_error(field_for(form, exc.path), exc.message)
        else:
            messages.success(request, f"Environment {environment.name} created.")
            return redirect("environment", environment_id=environment.pk)
    return render(request, "deployments/environment_form.html", {"form": form}, status=400 if form.errors else 200)


def _visible_or_404(request, environment_id: int) -> Environment:
    found = Environment.objects.visible_to(request.user).select_related("approver_group").filter(pk=environment_id)
    environment = found.first()
    if environment is None:
        raise Http404("No such environment.")
    return environment


@require_http_methods(["GET", "POST"])
def detail(request, environment_id: int):
    environment = _visible_or_404(request, environment_id)
    can_change = policy.can(request.user, "deployments.change_environment")
    form = EnvironmentForm(request.POST or None, initial=EnvironmentForm.initial_for(environment))
    form.fields["name"].disabled = True
    if request.method == "POST":
        require_perm(request.user, "deployments.change_environment", "Changing environments needs the admin role.")
        if form.is_valid():
            try:
                environment_update(
                    actor=request.user,
                    environment=environment,
                    policy=form.policy(),
                    webhook_secret=form.cleaned_data["webhook_secret"],
                )
            except DomainError as exc:
                form.add_error(field_for(form, exc.path), exc.message)
            else:
                messages.success(request, "Policy saved.")
                return redirect("environment", environment_id=environment.pk)
    context = {
        "environment": environment,
        "form": form,
        "can_change": can_change,
        "memberships": environment.memberships.select_related("user"),
        "roles": EnvironmentMembership.Role.choices,
        "deliveries": environment.deliveries.all()[:20]
        if policy.can_somewhere(request.user, "deployments.view_webhookdelivery")
        else [],
        **object_history(request.user, environment),
    }
    return render(request, "deployments/environment_detail.html", context, status=400 if form.errors else 200)


@require_POST
def membership_add(request, environment_id: int):
    environment = _visible_or_404(request, environment_id)
    try:
        membership_set(
            actor=request.user,
            environment=environment,
            username=request.POST.get("username", ""),
            role=request.POST.get("role", ""),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Role granted.")
    return redirect("environment", environment_id=environment.pk)


@require_POST
def membership_delete(request, environment_id: int, membership_id: int):
    environment = _visible_or_404(request, environment_id)
    membership = environment.memberships.filter(pk=membership_id).first()
    if membership is None:
        raise Http404("No such role.")
    try:
        membership_remove(actor=request.user, membership=membership)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Role removed.")
    return redirect("environment", environment_id=environment.pk)
