import json
from datetime import timedelta

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployments import crypto, policy
from workers.targets import registry


class TargetQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(self, user, "deployments.view_target", environment_field="environment_id")


class Target(models.Model):
    """Where deployments run: a local Triton, or an Azure ML workspace's compute."""

    class AuthMethod(models.TextChoices):
        NONE = "none", "None (local)"
        SERVICE_PRINCIPAL = "service_principal", "Service principal"
        MANAGED_IDENTITY = "managed_identity", "Managed identity"
        AZURE_CLI = "azure_cli", "Azure CLI login"

    name = models.CharField(max_length=100, unique=True)
    # A name from workers/targets/registry.py; no choices= here, so a new kind
    # is its package and a registry line, not a migration.
    kind = models.CharField(max_length=32)
    environment = models.ForeignKey("deployments.Environment", on_delete=models.PROTECT, related_name="targets")
    # Non-secret, kind-specific settings (workspace coordinates, compute name,
    # tenant and client ids, default resources). Secrets never live here.
    settings = models.JSONField(default=dict, blank=True)
    auth_method = models.CharField(max_length=20, choices=AuthMethod.choices, default=AuthMethod.NONE)
    # Fernet token of a JSON object of secrets (e.g. the client secret); never
    # rendered, logged or returned by the API.
    credentials_encrypted = models.TextField(blank=True)
    # The last "test connection": {"ok", "message", "at", "by"}.
    last_test = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TargetQuerySet.as_manager()

    class Meta:
        ordering = ["environment__position", "name"]

    def __str__(self):
        return self.name

    @property
    def descriptor(self):
        return registry.descriptor(self.kind)

    @property
    def kind_label(self) -> str:
        return self.descriptor.label

    @property
    def capabilities(self) -> set[str]:
        """For templates: {% if "traffic" in target.capabilities %}."""
        return {str(capability) for capability in self.descriptor.capabilities}

    @property
    def where(self) -> str:
        return self.descriptor.where(self.settings)

    @property
    def warnings(self) -> list[str]:
        return self.descriptor.warnings()

    def secrets(self) -> dict:
        return json.loads(crypto.decrypt(self.credentials_encrypted)) if self.credentials_encrypted else {}

    def set_secrets(self, secrets: dict) -> None:
        self.credentials_encrypted = crypto.encrypt(json.dumps(secrets)) if secrets else ""

    # A test no worker finished in this long never will (no worker running, or
    # it died): the page stops waiting and offers the button again.
    TEST_GIVEN_UP_AFTER = timedelta(minutes=2)

    @property
    def test_state(self) -> str:
        """ok, failed, running, stalled, or "" (never tested)."""
        state = self.last_test.get("state", "")
        if state == "running":
            started = parse_datetime(self.last_test.get("at") or "")
            if started is None or timezone.now() - started > self.TEST_GIVEN_UP_AFTER:
                return "stalled"
        return state

    @property
    def has_secrets(self) -> bool:
        return bool(self.credentials_encrypted)
