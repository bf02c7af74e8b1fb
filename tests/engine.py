"""Helpers for deployment-engine tests: environments, targets, and running an
operation the way a worker would."""

import uuid

from deployments.models import Environment, Operation, Target
from deployments.services.operations import operation_execute
from workers.targets import local


def local_target(name="local-dev", environment="dev", approvals=0) -> Target:
    env, _ = Environment.objects.get_or_create(name=environment, defaults={"approvals_required": approvals})
    return Target.objects.create(name=name, kind=local.KIND.name, environment=env)


def run_pending(deployment) -> Operation:
    """Run the deployment's queued operation in this process, as the task would."""
    operation = deployment.operations.get(status=Operation.Status.QUEUED)
    operation_execute(operation_id=operation.pk, task_id=uuid.uuid4().hex)
    operation.refresh_from_db()
    deployment.refresh_from_db()
    return operation
