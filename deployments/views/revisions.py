"""Moving a deployment to another revision of its line, and promoting what it
runs to another environment: each page shows what will change (the diff,
what runs at the destination now, whether approval is needed) before the
person confirms."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from deployments import policy
from deployments.errors import DomainError
from deployments.models import Deployment, Environment, ModelRepository, Target
from deployments.selectors.revisions import revision_diff
from deployments.services.deployments import deployment_redeploy
from deployments.services.permissions import require
from deployments.services.promotion import candidates, deployment_promote, promotable_environments, usable_targets
from deployments.views.access import deployment_or_404


def _revision_choices(deployment: Deployment):
    """The line's other valid revisions, newest first."""
    if deployment.repository is None:
        return ModelRepository.objects.none()
    return (
        ModelRepository.objects.filter(line_id=deployment.repository.line_id, status=ModelRepository.Status.VALID)
        .exclude(pk=deployment.repository_id)
        .order_by("-revision")
    )


@require_http_methods(["GET", "POST"])
def update_revision(request, deployment_id: int):
    """GET: the diff from what runs to the chosen revision; POST: redeploy with it."""
    deployment = deployment_or_404(request, deployment_id)
    environment = deployment.target.environment
    require(request.user, "deployments.add_deployment", "Redeploying", environment=environment)
    choices = _revision_choices(deployment)
    chosen = choices.filter(pk=request.POST.get("repository") or request.GET.get("repository") or 0).first()
    error = ""
    if request.method == "POST":
        if chosen is None:
            error = "Choose one of the line's valid revisions."
        else:
            try:
                deployment_redeploy(deployment=deployment, actor=request.user, repository=chosen)
            except DomainError as exc:
                error = exc.message
            else:
                waits = deployment.requests.filter(status="pending").exists()
                still = f"r{deployment.repository_revision} keeps running"
                messages.success(
                    request,
                    f"Update to revision {chosen.revision} requested"
                    + (f": waiting for approval in {environment.name}; {still}." if waits else "."),
                )
                return redirect("deployment", deployment_id=deployment.pk)
    return render(
        request,
        "deployments/update_revision.html",
        {
            "deployment": deployment,
            "choices": choices,
            "chosen": chosen,
            "diff": revision_diff(deployment.repository, chosen) if chosen else None,
            "needs_approval": environment.needs_approval("deploy"),
            "error": error,
        },
        status=400 if error else 200,
    )


def _lookup(queryset, value):
    return queryset.filter(pk=value).first() if str(value).isdigit() else None


@require_http_methods(["GET", "POST"])
def promote(request, deployment_id: int):
    """GET with an environment: what runs there now, the diff and the
    choices; POST: promote."""
    source = deployment_or_404(request, deployment_id)
    environments = promotable_environments(request.user, source)
    if not environments:
        raise Http404("No environment to promote to.")
    data = request.POST if request.method == "POST" else request.GET
    environment = _lookup(Environment.objects.filter(pk__in=[e.pk for e in environments]), data.get("environment"))
    error, choices = "", []
    context = {"source": source, "environments": environments, "environment": environment}
    if environment is not None:
        target = _lookup(Target.objects.filter(environment=environment), data.get("target"))
        into = _lookup(
            Deployment.objects.filter(target__environment=environment).exclude(status__in=Deployment.TERMINAL),
            data.get("deployment"),
        )
        name = data.get("name", "").strip()
        force = data.get("force") == "1"
        if request.method == "POST":
            try:
                promoted = deployment_promote(
                    deployment=source,
                    environment=environment,
                    actor=request.user,
                    target=target,
                    into=into,
                    name=name,
                    force=force,
                )
            except DomainError as exc:
                error, choices = exc.message, exc.choices
            else:
                result = promoted.deployment
                waits = result.requests.filter(status="pending").exists()
                messages.success(
                    request,
                    f"{source.name} r{source.repository_revision} promoted to {environment.name}"
                    + (" as a new deployment" if promoted.created else "")
                    + (f": waiting for approval in {environment.name}." if waits else "."),
                )
                return redirect("deployment", deployment_id=result.pk)
        there = candidates(environment, source) if source.repository else []
        shown = into or (there[0] if len(there) == 1 else None)
        context.update(
            {
                "target": target,
                "into": into,
                "name": name or source.name,
                "force": force,
                "there": there,
                "targets": usable_targets(environment, source),
                "diff": revision_diff(shown.repository, source.repository) if shown and shown.repository else None,
                "shown": shown,
                "needs_approval": environment.needs_approval("deploy"),
            }
        )
    context.update({"error": error, "choices": choices, "healthy": source.status == Deployment.Status.HEALTHY})
    return render(request, "deployments/promote.html", context, status=400 if error else 200)


def actions(request, deployment: Deployment) -> dict:
    """What the deployment page offers here: the revisions to move to, the
    environments to promote to."""
    if deployment.status == Deployment.Status.DELETED or deployment.repository is None:
        return {"revisions": [], "promote_to": []}
    can_change = policy.can(request.user, "deployments.add_deployment", deployment.target.environment)
    return {
        "revisions": list(_revision_choices(deployment)[:20]) if can_change else [],
        "promote_to": promotable_environments(request.user, deployment),
        "promote_url": reverse("deployment-promote", args=[deployment.pk]),
    }
