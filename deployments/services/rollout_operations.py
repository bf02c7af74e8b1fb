"""What the operation engine needs to know of rollouts: the candidate's
spec, which a rollout's deploy operation hands to the target instead of the
deployment's own (that stays the baseline's until the rollout promotes)."""

from deployments.models import ModelRepository, Operation, Rollout
from workers.targets.base import DeploySpec, TargetError


def rollout_repository(operation: Operation) -> ModelRepository | None:
    """The candidate's repository, for a rollout's deploy operation; else None."""
    rollout_id = operation.params.get("rollout")
    if not rollout_id or operation.kind != Operation.Kind.DEPLOY:
        return None
    spec = Rollout.objects.values_list("spec", flat=True).get(pk=rollout_id)
    return ModelRepository.objects.filter(pk=spec["repository_id"], digest=spec["repository_digest"]).first()


def rollout_candidate_spec(deployment, operation: Operation, adapter) -> DeploySpec:
    """The candidate beside the baseline: at 0 % until the rollout shifts traffic to it."""
    from deployments.services.operations import registry_names

    rollout = Rollout.objects.get(pk=operation.params["rollout"])
    repository = rollout_repository(operation)
    if repository is None:
        raise TargetError("the candidate's repository was deleted", permanent=True)
    spec = rollout.spec
    return DeploySpec(
        deployment_id=deployment.pk,
        name=deployment.name,
        repository_path=repository.path,
        repository_digest=repository.digest,
        spec_digest=rollout.candidate_digest,
        mode=spec["mode"],
        entry_script=spec["entry_script"],
        pip_packages=spec["pip_packages"],
        worker_count=spec["worker_count"],
        resources=spec["resources"],
        auth_enabled=spec["auth_enabled"],
        idempotency_key=str(operation.idempotency_key),
        candidate=True,
        **registry_names(repository, adapter),
    )
