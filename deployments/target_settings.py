"""What each kind of target needs to know, checked field by field."""

import re
import uuid

from deployments.errors import DomainError
from deployments.models import Target

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,89}$")
_WORKSPACE = ("subscription_id", "resource_group", "workspace_name")
REQUIRED = {
    Target.Kind.LOCAL: (),
    Target.Kind.AZUREML_V1_AKS: (*_WORKSPACE, "compute_name"),
    Target.Kind.AZUREML_V2_KUBERNETES: (*_WORKSPACE, "compute_name", "instance_type"),
    Target.Kind.AZUREML_V2_MANAGED: (*_WORKSPACE, "instance_type"),
}
OPTIONAL = {"default_resources", "num_replicas", "instance_count", "tenant_id", "client_id", "location"}
_RESOURCES = {"gpu_cores": 16, "cpu_cores": 64, "memory_gb": 512}


def _text(settings: dict, key: str) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DomainError(f"{key} is required for this kind of target.", path=f"settings.{key}")
    return value.strip()


def clean_settings(kind: str, auth_method: str, settings: dict, secrets: dict) -> dict:
    if kind not in REQUIRED:
        raise DomainError(f"kind is one of {', '.join(REQUIRED)}.", path="kind")
    if not isinstance(settings, dict):
        raise DomainError("settings is a JSON object.", path="settings")
    unknown = set(settings) - set(REQUIRED[kind]) - OPTIONAL
    if unknown:
        raise DomainError(f"Unknown settings: {', '.join(sorted(unknown))}.", path=f"settings.{sorted(unknown)[0]}")
    clean = {}
    for key in REQUIRED[kind]:
        value = _text(settings, key)
        if key == "subscription_id":
            try:
                value = str(uuid.UUID(value))
            except ValueError:
                raise DomainError("subscription_id is a GUID.", path="settings.subscription_id") from None
        elif not _NAME.match(value):
            raise DomainError(f"{key} has characters Azure does not allow.", path=f"settings.{key}")
        clean[key] = value
    resources = settings.get("default_resources") or {}
    if not isinstance(resources, dict):
        raise DomainError("default_resources is an object.", path="settings.default_resources")
    for key, value in resources.items():
        if key not in _RESOURCES or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DomainError(
                f"default_resources.{key} is not a known number.", path=f"settings.default_resources.{key}"
            )
        if not 0 <= value <= _RESOURCES[key]:
            raise DomainError(f"{key} must be from 0 to {_RESOURCES[key]}.", path=f"settings.default_resources.{key}")
    if resources:
        clean["default_resources"] = resources
    for key in ("num_replicas", "instance_count"):
        if key in settings:
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                raise DomainError(f"{key} is a whole number from 1 to 100.", path=f"settings.{key}")
            clean[key] = value
    _check_auth(kind, auth_method, settings, secrets, clean)
    return clean


def _check_auth(kind: str, auth_method: str, settings: dict, secrets: dict, clean: dict) -> None:
    if kind == Target.Kind.LOCAL:
        if auth_method != Target.AuthMethod.NONE:
            raise DomainError("A local target takes no Azure credentials.", path="auth_method")
        return
    if auth_method not in (
        Target.AuthMethod.SERVICE_PRINCIPAL,
        Target.AuthMethod.MANAGED_IDENTITY,
        Target.AuthMethod.AZURE_CLI,
    ):
        raise DomainError("auth_method is service_principal, managed_identity or azure_cli.", path="auth_method")
    if auth_method == Target.AuthMethod.SERVICE_PRINCIPAL:
        for key in ("tenant_id", "client_id"):
            clean[key] = _text(settings, key)
        if not secrets.get("client_secret"):
            raise DomainError("A service principal needs its client_secret.", path="secrets.client_secret")
    elif auth_method == Target.AuthMethod.MANAGED_IDENTITY and settings.get("client_id"):
        clean["client_id"] = _text(settings, "client_id")
