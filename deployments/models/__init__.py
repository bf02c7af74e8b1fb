from deployments.models.api_token import ApiToken
from deployments.models.audit_event import AuditEvent
from deployments.models.deployment import Deployment
from deployments.models.environment import Environment
from deployments.models.health_sample import HealthSample
from deployments.models.metric_point import MetricPoint
from deployments.models.model_repository import ModelRepository, TritonModel
from deployments.models.operation import Operation
from deployments.models.target import Target
from deployments.models.worker_heartbeat import WorkerHeartbeat

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Deployment",
    "Environment",
    "HealthSample",
    "MetricPoint",
    "ModelRepository",
    "Operation",
    "Target",
    "TritonModel",
    "WorkerHeartbeat",
]
