"""Moving a deployment to another target (an SDK v1 webservice to an SDK v2
endpoint): the wizard, the migration's page with both sides compared, and
its actions."""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.models import Migration, ModelRepository, Target
from deployments.services.migrations import (
    migration_abandon,
    migration_compare,
    migration_create,
    migration_cut_over,
    why_not,
)
from deployments.services.permissions import require
from deployments.views.access import deployment_or_404, live_page


def destinations(user, deployment) -> list[tuple[Target, str]]:
    """Targets of the deployment's environment the user may see, each with why it cannot take it ("" if it can)."""
    targets = (
        Target.objects.visible_to(user)
        .filter(environment_id=deployment.target.environment_id)
        .exclude(pk=deployment.target_id)
        .order_by("name")
    )
    return [(target, why_not(deployment, target)) for target in targets]


class MigrationForm(forms.Form):
    target = forms.ModelChoiceField(queryset=Target.objects.none(), label="Move to")
    name = forms.CharField(max_length=63, required=False, help_text="the new deployment's name (default: the same)")
    repository = forms.ModelChoiceField(
        queryset=ModelRepository.objects.none(),
        required=False,
        help_text="an adopted service has no recorded repository: the revision that holds its models",
    )

    def __init__(self, *args, deployment, choices, **kwargs):
        super().__init__(*args, **kwargs)
        eligible = [t.pk for t, why in choices if not why]
        self.fields["target"].queryset = Target.objects.filter(pk__in=eligible).order_by("name")
        self.fields["target"].empty_label = None
        self.fields["repository"].queryset = ModelRepository.objects.filter(
            status=ModelRepository.Status.VALID
        ).order_by("name", "-revision")
        if deployment.repository_id is not None:
            del self.fields["repository"]


@require_http_methods(["GET", "POST"])
def create(request, deployment_id: int):
    deployment = deployment_or_404(request, deployment_id)
    require(
        request.user, "deployments.add_deployment", "Moving a deployment", environment=deployment.target.environment
    )
    choices = destinations(request.user, deployment)
    form = MigrationForm(request.POST or None, deployment=deployment, choices=choices)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            migration = migration_create(
                source=deployment,
                target=data["target"],
                actor=request.user,
                name=data["name"],
                repository=data.get("repository"),
            )
        except DomainError as exc:
            form.add_error(exc.path if exc.path in form.fields else None, exc.message)
        else:
            messages.success(request, f"{migration.destination.name} requested on {migration.destination.target.name}.")
            return redirect("migration", migration_id=migration.pk)
    return render(
        request,
        "deployments/migration_form.html",
        {"form": form, "deployment": deployment, "choices": choices},
        status=400 if form.errors else 200,
    )


def _migration_or_404(request, migration_id: int) -> Migration:
    found = (
        Migration.objects.visible_to(request.user)
        .select_related("source__target__environment", "destination__target", "created_by")
        .filter(pk=migration_id)
        .first()
    )
    if found is None:
        raise Http404("No such migration.")
    return found


@require_safe
def detail(request, migration_id: int):
    migration = _migration_or_404(request, migration_id)
    context = {
        "migration": migration,
        "can_act": policy.can(request.user, "deployments.add_deployment", migration.source.target.environment),
        "polling": migration.status
        in (Migration.Status.DEPLOYING, Migration.Status.COMPARING, Migration.Status.CUTTING_OVER),
    }
    return live_page(request, "deployments/migration_detail.html", context, finished=not context["polling"])


def _act(request, migration_id: int, service, done: str, **extra):
    migration = _migration_or_404(request, migration_id)
    try:
        service(migration=migration, actor=request.user, **extra)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("migration", migration_id=migration.pk)


@require_POST
def compare(request, migration_id: int):
    return _act(request, migration_id, migration_compare, "Comparing both sides.")


@require_POST
def cut_over(request, migration_id: int):
    force = bool(request.POST.get("force"))
    return _act(
        request,
        migration_id,
        migration_cut_over,
        "The original's delete is requested.",
        force=force,
        because=request.POST.get("because", ""),
    )


@require_POST
def abandon(request, migration_id: int):
    return _act(request, migration_id, migration_abandon, "Abandoned: the new deployment stays until deleted.")
