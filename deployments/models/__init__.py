from deployments.models.api_token import ApiToken
from deployments.models.audit_event import AuditEvent
from deployments.models.model_repository import ModelRepository, TritonModel
from deployments.models.worker_heartbeat import WorkerHeartbeat

__all__ = ["ApiToken", "AuditEvent", "ModelRepository", "TritonModel", "WorkerHeartbeat"]
