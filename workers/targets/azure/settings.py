"""The settings and credentials every Azure ML kind takes: a workspace's
coordinates and one of three ways to authenticate."""

import re

from deployments.errors import DomainError
from workers.targets.descriptor import NameRule, SettingField, check_azure_name, check_count, check_guid, check_text

WORKSPACE = (
    SettingField("subscription_id", "Subscription ID", check_guid, required=True),
    SettingField("resource_group", "Resource group", check_azure_name, required=True),
    SettingField("workspace_name", "Workspace name", check_azure_name, required=True),
)
COMPUTE = SettingField(
    "compute_name", "Compute name", check_azure_name, required=True, help="the AKS or Kubernetes compute, e.g. aks-gpu"
)
INSTANCE_TYPE = SettingField(
    "instance_type",
    "Instance type",
    check_azure_name,
    required=True,
    help="e.g. Standard_NC6s_v3, or a Kubernetes instance type",
)
LOCATION = SettingField("location", "Location", check_text, form=False)
AUTH_METHODS = ("service_principal", "managed_identity", "azure_cli")
AUTH_SETTINGS = ("tenant_id", "client_id")
SECRETS = ("client_secret",)

# Azure ML webservice and online endpoint names: 3 to 32, starting with a letter.
NAME_RULE = NameRule(
    re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"),
    "On Azure ML the name becomes the webservice or endpoint name: 3 to 32 characters, starting with a letter.",
)


def replicas(name: str) -> SettingField:
    return SettingField(name, name.replace("_", " ").capitalize(), check_count, form=False)


def check_auth(auth_method: str, settings: dict, secrets: dict) -> dict:
    clean = {}
    if auth_method == "service_principal":
        for key in AUTH_SETTINGS:
            clean[key] = check_text(key, settings.get(key))
        if not secrets.get("client_secret"):
            raise DomainError("A service principal needs its client_secret.", path="secrets.client_secret")
    elif auth_method == "managed_identity" and settings.get("client_id"):
        clean["client_id"] = check_text("client_id", settings["client_id"])
    return clean


def where(settings: dict) -> str:
    compute = settings.get("compute_name") or settings.get("instance_type", "")
    return f"{settings.get('workspace_name', '')} / {compute}".strip(" /")


def instance_sizing(settings: dict) -> str:
    """An online deployment runs on the target's instance type, as many as its count."""
    count = settings.get("instance_count", 1)
    return f"{count} instance{'' if count == 1 else 's'} of {settings.get('instance_type') or 'its instance type'}"
