"""Every kind of target, and the one door to their adapters.

The rest of the dashboard asks here what a kind is called, which settings
and credentials it takes, what it can do and how its errors read; it never
compares kind names itself (tests/test_architecture.py checks). A new kind is
a package declaring KINDS and one line in PACKAGES.

adapter_for() wraps every adapter in the error boundary: a method of a
capability the kind lacks is refused, naming both, and whatever the SDK or
the network raises becomes a TargetError (transient or permanent) with the
SDK's own message. Anything else escaping an adapter is a bug of ours and
reaches the engine's "internal error" path as it is.
"""

import functools
import importlib

from django.conf import settings

from deployments.errors import DomainError
from workers.targets.base import CAPABILITY_METHODS, Capability, TargetAdapter, TargetError
from workers.targets.descriptor import KindDescriptor

# The kind packages under workers/targets/, each exporting KINDS (its descriptors).
PACKAGES = (
    "local",
    "azureml_v1",
    "azureml_v2",
    "fake",
)
KINDS: dict[str, KindDescriptor] = {
    descriptor.name: descriptor
    for package in PACKAGES
    for descriptor in importlib.import_module(f"workers.targets.{package}").KINDS
}


class Unsupported(DomainError):
    """The target's kind lacks the capability an action needs."""

    code = "unsupported"


def descriptor(kind: str) -> KindDescriptor:
    try:
        return KINDS[kind]
    except KeyError:
        raise DomainError(f"No kind of target is called {kind!r} here.", path="kind") from None


def offered() -> list[KindDescriptor]:
    """The kinds a person may create targets of here."""
    testing = settings.DEBUG or settings.TARGET_TEST_KINDS
    return [kind for kind in KINDS.values() if (testing or not kind.test_only) and kind.available()]


def offered_descriptor(kind: str) -> KindDescriptor:
    for candidate in offered():
        if candidate.name == kind:
            return candidate
    raise DomainError(f"kind is one of {', '.join(k.name for k in offered())}.", path="kind")


def require(target, capability: Capability) -> None:
    """Refuse an action the target's kind cannot do (a 400 naming both)."""
    kind = descriptor(target.kind)
    if not kind.has(capability):
        raise Unsupported(unsupported(kind, capability) + ".")


def unsupported(kind: KindDescriptor, capability: Capability) -> str:
    return f"{kind.label} targets ({kind.name}) do not support {capability.meaning} ({capability})"


def operations_queue(target) -> str:
    """Host-bound kinds run their operations on the host whose processes they
    manage, so two worker hosts can never both start a server for one deployment."""
    if descriptor(target.kind).host_bound:
        return host_queue(target_host(target))
    return "operations"


def target_host(target) -> str:
    return target.settings.get("host") or settings.WORKER_HOST


def host_queue(host: str) -> str:
    return f"host.{host}"


def adapter_for(target) -> "GuardedAdapter":
    kind = descriptor(target.kind)
    return GuardedAdapter(kind, kind.adapter_class()(target))


# What a call was doing, for messages, when the adapter did not say more precisely (base.doing).
_DOING = {
    "deploy": "deploying",
    "status": "reading the status",
    "delete": "deleting",
    "test_connection": "testing the connection",
    "logs": "reading the logs",
    "keys": "reading the keys",
    "set_traffic": "setting traffic",
    "list_services": "listing services",
    "metrics_url": "finding the metrics address",
}


class GuardedAdapter:
    """The adapter as the engine sees it: capability-checked, errors translated once."""

    def __init__(self, kind: KindDescriptor, inner: TargetAdapter):
        self.kind = kind
        self.inner = inner

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)
        if not callable(method) or name.startswith("_"):
            return method
        capability = CAPABILITY_METHODS.get(name)
        if capability is not None and not self.kind.has(capability):
            raise TargetError(unsupported(self.kind, capability), permanent=True)

        @functools.wraps(method)
        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except TargetError:
                raise
            except Exception as exc:
                translated = self.kind.translate_error(exc, getattr(exc, "target_doing", _DOING.get(name, name)))
                if translated is None:
                    raise  # not the target's answer: a bug, reported as one
                raise translated from exc

        return call
