"""A kind of target described in one place: what it needs, what it can do,
how its errors read. Each kind package declares one (or, for two flavours of
one adapter, two) and registry.py lists them; nothing else knows a kind.

Descriptors are cheap to import: the adapter class is named, not imported,
because the Azure SDKs take seconds to load and the web tier never runs them.
"""

import importlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from deployments.errors import DomainError
from workers.targets.base import Capability, TargetError

# Each check_* takes (setting name, value) and returns the clean value or raises DomainError.
_AZURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,89}$")
RESOURCE_LIMITS = {"gpu_cores": 16, "cpu_cores": 64, "memory_gb": 512}


def check_text(key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError(f"{key} is required for this kind of target.", path=f"settings.{key}")
    return value.strip()


def check_guid(key: str, value) -> str:
    try:
        return str(uuid.UUID(check_text(key, value)))
    except ValueError:
        raise DomainError(f"{key} is a GUID.", path=f"settings.{key}") from None


def check_azure_name(key: str, value) -> str:
    value = check_text(key, value)
    if not _AZURE_NAME.match(value):
        raise DomainError(f"{key} has characters Azure does not allow.", path=f"settings.{key}")
    return value


def check_count(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise DomainError(f"{key} is a whole number from 1 to 100.", path=f"settings.{key}")
    return value


def check_resources(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise DomainError(f"{key} is an object.", path=f"settings.{key}")
    for name, amount in value.items():
        if name not in RESOURCE_LIMITS or isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise DomainError(f"{key}.{name} is not a known number.", path=f"settings.{key}.{name}")
        if not 0 <= amount <= RESOURCE_LIMITS[name]:
            raise DomainError(f"{name} must be from 0 to {RESOURCE_LIMITS[name]}.", path=f"settings.{key}.{name}")
    return value


@dataclass(frozen=True)
class SettingField:
    """One non-secret setting. `form` fields appear on the target form."""

    name: str
    label: str
    check: Callable[[str, object], object] = check_text
    required: bool = False
    help: str = ""
    form: bool = True


@dataclass(frozen=True)
class NameRule:
    """What a deployment's name must look like on this kind (it becomes a
    service or endpoint name there)."""

    pattern: re.Pattern
    message: str

    def check(self, name: str) -> None:
        if not self.pattern.match(name):
            raise DomainError(self.message, path="name")


# (auth_method, settings, secrets) -> settings the method needs, cleaned; or DomainError.
AuthCheck = Callable[[str, dict, dict], dict]


def no_credentials(auth_method: str, settings: dict, secrets: dict) -> dict:
    if auth_method != "none":
        raise DomainError("This kind of target takes no credentials.", path="auth_method")
    return {}


class Probe:
    """How the health poller sees a deployment's data plane."""

    # GET the scoring URI's Triton /v2 health routes with the endpoint key:
    # one asynchronous fan-out over the fleet.
    TRITON_HTTP = "triton_http"
    # An entry-script server's own health route (azureml-inference-server-http answers GET /).
    ENTRY_SERVER = "entry_server"
    # No address to probe from here: the reconciler's status() is the observation.
    ADAPTER = "adapter"


@dataclass(frozen=True)
class KindDescriptor:
    name: str
    label: str
    # "module:Class", imported when a worker first needs it.
    adapter: str
    capabilities: frozenset[Capability] = frozenset()
    settings: tuple[SettingField, ...] = ()
    secret_fields: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ("none",)
    check_auth: AuthCheck = no_credentials
    # Settings only some auth methods use (kept out of "unknown settings").
    auth_settings: tuple[str, ...] = ()
    default_resources: bool = False
    # The resources (RESOURCE_LIMITS' names) its adapter gives each
    # deployment: the deploy form asks for these only.
    deployment_resources: tuple[str, ...] = ()
    # What a deployment runs on where the target decides it rather than the
    # deployment, in words from its settings (SDK v2: the instance type and count).
    sizing: Callable[[dict], str] = field(default=lambda settings: "")
    name_rule: NameRule | None = None
    # How a deployment's data plane is probed, in Triton mode and in
    # entry-script mode (whose address may answer /score alone, as on Azure).
    probe: str = Probe.TRITON_HTTP
    entry_probe: str = Probe.ENTRY_SERVER
    # The endpoint routes to one of its deployments by the
    # azureml-model-deployment header: each is probed on its own, so one at
    # 0% of the traffic is judged too.
    probe_each_deployment: bool = False
    # Its operations manage processes on one host: they run on that host's
    # queue (queue_for) and nowhere else.
    host_bound: bool = False
    # exception -> TargetError, or None when it is not the kind's own
    # (SDK, network, process) error but a bug of ours.
    translate_error: Callable[[BaseException, str], TargetError | None] = lambda exc, doing: None
    # Offered only under DEBUG or to the test suite (TARGET_TEST_KINDS).
    test_only: bool = False
    # Whether this installation offers the kind at all (a setting may switch it off).
    available: Callable[[], bool] = field(default=lambda: True)
    # A short remark shown beside the kind on pages, and the form's guidance.
    note: str = ""
    guidance: str = ""
    # How a new spec meets the traffic split (kinds with the traffic capability).
    traffic_note: str = ""
    # What a rollout's gates can measure on this kind, each with its source
    # ({gate: "where the figure comes from"}), and whether failures carry
    # Triton's reasons (REJECTED, BACKEND, ...).
    rollout_signals: dict = field(default_factory=dict)
    failure_reasons: bool = False
    # In entry-script mode its endpoint routes /v2 to the script's own Triton
    # too, so health checks both (on Azure only /score is reachable).
    entry_exposes_triton: bool = False
    # Where it runs, in a few words, from its settings.
    where: Callable[[dict], str] = field(default=lambda settings: "")
    # When the kind's SDK stopped being supported ("" while it is): its
    # deployments' pages say so and offer to move them to another target.
    end_of_support: str = ""
    # Config searches may start scratch deployments on it: Tritons of this
    # installation's own, never a team's deployment, removed after each try.
    scratch_deployments: bool = False
    # What every page of such a target must say now (e.g. a sandbox switched off).
    warnings: Callable[[], list[str]] = field(default=lambda: [])

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def probe_for(self, mode: str) -> str:
        """How the health poller probes a deployment of this mode (Probe.*)."""
        return self.entry_probe if mode == "entry_script" else self.probe

    def adapter_class(self) -> type:
        module, _, name = self.adapter.partition(":")
        return getattr(importlib.import_module(module), name)

    def clean_settings(self, auth_method: str, settings: dict, secrets: dict) -> dict:
        """The settings this kind keeps, checked field by field; DomainError names the first bad one."""
        if not isinstance(settings, dict):
            raise DomainError("settings is a JSON object.", path="settings")
        if auth_method not in self.auth_methods:
            raise DomainError(
                f"auth_method is {' or '.join(self.auth_methods)} for a {self.label} target.", path="auth_method"
            )
        known = {f.name for f in self.settings} | set(self.auth_settings)
        if self.default_resources:
            known.add("default_resources")
        unknown = sorted(set(settings) - known)
        if unknown:
            raise DomainError(f"Unknown settings: {', '.join(unknown)}.", path=f"settings.{unknown[0]}")
        clean = {}
        for setting in self.settings:
            value = settings.get(setting.name)
            if value in (None, ""):
                if setting.required:
                    raise DomainError(
                        f"{setting.name} is required for this kind of target.", path=f"settings.{setting.name}"
                    )
                continue
            clean[setting.name] = setting.check(setting.name, value)
        if self.default_resources and settings.get("default_resources"):
            clean["default_resources"] = check_resources("default_resources", settings["default_resources"])
        clean.update(self.check_auth(auth_method, settings, secrets))
        return clean

    def clean_secrets(self, secrets) -> dict:
        if secrets in (None, ""):
            return {}
        if not isinstance(secrets, dict) or set(secrets) - set(self.secret_fields):
            takes = ", ".join(self.secret_fields) or "nothing"
            raise DomainError(f"secrets takes {takes} for a {self.label} target.", path="secrets")
        return {key: value for key, value in secrets.items() if isinstance(value, str) and value}
