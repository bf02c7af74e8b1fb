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


def queued_tasks(queue_name: str) -> list[str]:
    """Names of the tasks waiting in a broker queue, oldest first, on Redis or the embedded SQLite broker."""
    import base64
    import json
    import sqlite3

    import redis
    from django.conf import settings
    from sqlalchemy.engine import make_url

    if settings.CELERY_BROKER_URL.startswith("redis"):
        # Celery pushes on the left and takes from the right.
        messages = redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange(queue_name, 0, -1)[::-1]
    else:
        with sqlite3.connect(make_url(settings.CELERY_BROKER_URL).database) as db:
            rows = db.execute(
                "SELECT payload FROM kombu_message JOIN kombu_queue ON kombu_queue.id = queue_id"
                " WHERE kombu_queue.name = ? AND visible ORDER BY timestamp, kombu_message.id",
                (queue_name,),
            ).fetchall()
        messages = [payload for (payload,) in rows]
    names = []
    for raw in messages:
        message = json.loads(raw)
        if "task" not in message.get("headers", {}):
            message = json.loads(base64.b64decode(message["body"]))
        names.append(message["headers"]["task"])
    return names


def endpoint_headers(deployment) -> dict[str, str]:
    """What a client of the deployment's endpoint sends: its key, when it has one."""
    from deployments import crypto

    deployment.refresh_from_db()
    if not deployment.key_encrypted:
        return {}
    return {"Authorization": f"Bearer {crypto.decrypt(deployment.key_encrypted)}"}
