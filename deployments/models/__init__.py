from deployments.models.api_token import ApiToken
from deployments.models.audit_event import AuditEvent
from deployments.models.deploy_request import Approval, DeployRequest
from deployments.models.deployment import Deployment
from deployments.models.environment import Environment, EnvironmentMembership
from deployments.models.health_sample import HealthSample
from deployments.models.load_test import ConfigSearch, LoadTest
from deployments.models.metric_point import MetricPoint
from deployments.models.migration import Migration
from deployments.models.model_line import ModelLine
from deployments.models.model_repository import ModelRepository, TritonModel
from deployments.models.operation import Operation
from deployments.models.registration import Registration
from deployments.models.rollout import GoldenRequest, Rollout, RolloutStep
from deployments.models.sso_identity import SsoIdentity
from deployments.models.target import Target
from deployments.models.webhook_delivery import WebhookDelivery
from deployments.models.worker_heartbeat import WorkerHeartbeat

__all__ = [
    "ApiToken",
    "Approval",
    "AuditEvent",
    "ConfigSearch",
    "DeployRequest",
    "Deployment",
    "Environment",
    "EnvironmentMembership",
    "GoldenRequest",
    "HealthSample",
    "LoadTest",
    "MetricPoint",
    "Migration",
    "ModelLine",
    "ModelRepository",
    "Operation",
    "Registration",
    "Rollout",
    "RolloutStep",
    "SsoIdentity",
    "Target",
    "TritonModel",
    "WebhookDelivery",
    "WorkerHeartbeat",
]
