"""Promotion: what a deployment runs (its revision and spec fields) goes to
another environment, into the deployment of the same line there or a new
one, through that environment's approvals like any other change."""

from dataclasses import dataclass

from deployments import policy
from deployments.audit import audit
from deployments.errors import Ambiguous, Conflict, DomainError, WrongState
from deployments.integrity import atomic
from deployments.models import Deployment, Environment, Target
from deployments.services import approvals
from deployments.services.deployments import deployment_create, deployment_redeploy
from deployments.services.permissions import require
from workers.targets import registry
from workers.targets.base import Capability


@dataclass(frozen=True)
class Promoted:
    deployment: Deployment
    created: bool  # False: an existing deployment of the line was updated


def usable_targets(environment: Environment, deployment: Deployment) -> list[Target]:
    """The environment's targets whose kind is available here and can run
    the deployment's mode."""
    found = []
    for target in environment.targets.all():
        kind = registry.descriptor(target.kind)
        if not kind.available():
            continue
        if deployment.mode == Deployment.Mode.ENTRY_SCRIPT and not kind.has(Capability.ENTRY_SCRIPT):
            continue
        found.append(target)
    return found


def candidates(environment: Environment, deployment: Deployment, target: Target | None = None):
    """Live deployments of the same line in the destination: the ones a
    promotion would update."""
    rows = Deployment.objects.filter(
        target__environment=environment, repository__line_id=deployment.repository.line_id
    ).exclude(status__in=Deployment.TERMINAL)
    if target is not None:
        rows = rows.filter(target=target)
    return list(rows.select_related("target").order_by("name", "pk"))


def promoted_spec(deployment: Deployment) -> dict:
    """The spec fields, mapped to the destination target: resources the
    source left at its target's defaults take the destination's defaults;
    those set on purpose go along."""
    defaults = deployment.target.settings.get("default_resources", {})
    return {
        "mode": deployment.mode,
        "entry_script": deployment.entry_script,
        "pip_packages": list(deployment.pip_packages),
        "worker_count": deployment.worker_count,
        "resources": {key: value for key, value in deployment.resources.items() if defaults.get(key) != value},
        "auth_enabled": deployment.auth_enabled,
    }


def _choice(deployment: Deployment) -> dict:
    return {
        "id": deployment.pk,
        "name": deployment.name,
        "description": f"on {deployment.target.name}, running {deployment.repository_name} "
        f"r{deployment.repository_revision} ({deployment.get_status_display().lower()})",
    }


def _check_source(source: Deployment, force: bool) -> str:
    """Why the source is promoted although not healthy ("" when it is)."""
    if source.adopted or source.repository is None:
        raise WrongState("This deployment has no recorded repository to promote.")
    if not approvals.was_released(source, source.spec_digest):
        raise WrongState(f"Nothing runs in {source.name} yet: its spec was never deployed.")
    if source.status == Deployment.Status.HEALTHY:
        return ""
    reason = f"{source.name} is {source.get_status_display().lower()}" + (
        f": {source.status_reason}" if source.status_reason else ""
    )
    if not force:
        raise WrongState(
            f"{reason}. Promote what is healthy, or promote it anyway (force).",
            code="not_healthy",
            path="force",
        )
    return reason


def _destination_target(environment: Environment, source: Deployment, target: Target | None) -> Target:
    usable = usable_targets(environment, source)
    if target is not None:
        if target.environment_id != environment.pk:
            raise DomainError(f"Target {target.name} is not in {environment.name}.", path="target")
        if target not in usable:
            raise DomainError(
                f"Target {target.name} ({target.kind_label}) cannot run {source.get_mode_display()} here.",
                path="target",
            )
        return target
    if not usable:
        raise DomainError(
            f"{environment.name} has no target that can run {source.name} ({source.get_mode_display()}):"
            " add one first.",
            code="no_target",
            path="environment",
        )
    if len(usable) > 1:
        raise Ambiguous(
            f"{environment.name} has {len(usable)} targets that could run it: name one in target.",
            path="target",
            choices=[{"id": t.pk, "name": t.name, "description": t.kind_label} for t in usable],
        )
    return usable[0]


@atomic
def deployment_promote(
    *,
    deployment: Deployment,
    environment: Environment,
    actor,
    target: Target | None = None,
    into: Deployment | None = None,
    name: str = "",
    force: bool = False,
) -> Promoted:
    """Create or update the deployment of the same line in `environment`
    with exactly what `deployment` runs. `into` picks which one to update
    when several could be; `name` names a new one."""
    require(actor, "deployments.add_deployment", "Promoting", environment=environment)
    source = Deployment.objects.select_related("target__environment", "repository").get(pk=deployment.pk)
    if environment.pk == source.target.environment_id:
        raise DomainError(f"{source.name} is already in {environment.name}: redeploy it instead.", path="environment")
    forced = _check_source(source, force)
    if into is None:
        found = candidates(environment, source, target)
        if len(found) > 1:
            raise Ambiguous(
                f"{len(found)} deployments of “{source.repository.line.name}” run in {environment.name}: name the"
                " one to update in deployment.",
                path="deployment",
                choices=[_choice(d) for d in found],
            )
        into = found[0] if found else None
    elif into.target.environment_id != environment.pk or into.status in Deployment.TERMINAL:
        raise DomainError(f"Deployment {into.name} is not a live deployment in {environment.name}.", path="deployment")
    origin = {
        "deployment": source.pk,
        "name": source.name,
        "environment": source.target.environment.name,
        "repository_revision": source.repository_revision,
        "spec_digest": source.spec_digest,
    }
    if into is not None:
        spec = promoted_spec(source)
        result = deployment_redeploy(
            deployment=into,
            actor=actor,
            changes=spec,
            repository=source.repository,
            # Picked by the caller or found by line: the switch is asked for.
            confirm_other_line=True,
            promoted_from=origin,
        )
    else:
        destination = _destination_target(environment, source, target)
        new_name = (name or source.name).strip()
        taken = (
            Deployment.objects.filter(target=destination, name=new_name).exclude(status__in=Deployment.TERMINAL).first()
        )
        if taken is not None:
            raise Conflict(
                f"{new_name} on {destination.name} is deployment #{taken.pk}, running “{taken.repository_name}”:"
                " give the new deployment another name.",
                path="name",
            )
        result = deployment_create(
            name=new_name,
            repository=source.repository,
            target=destination,
            actor=actor,
            promoted_from=origin,
            **promoted_spec(source),
        )
    audit(
        action="deployment.promoted",
        actor=actor,
        obj=source,
        details={
            "to_environment": environment.name,
            "to_deployment": result.pk,
            "to_name": result.name,
            "created": into is None,
            "repository": source.repository_name,
            "repository_revision": source.repository_revision,
            "repository_digest": source.repository_digest,
            "forced": bool(forced),
            **({"forced_because": forced} if forced else {}),
        },
    )
    return Promoted(result, created=into is None)


def promotable_environments(user, deployment: Deployment) -> list[Environment]:
    """Where the user could promote this deployment to."""
    return [
        environment
        for environment in Environment.objects.exclude(pk=deployment.target.environment_id).order_by("position")
        if policy.can(user, "deployments.add_deployment", environment)
    ]
