"""An in-memory target with switchable behaviour, for the fast test tier and
DEBUG: it succeeds, fails permanently, fails transiently N times, is slow,
turns unhealthy after a deploy, drifts, or crashes when its status is read
(a bug of an adapter, as the engine sees one), as its `behaviour` setting says.

Written through the registry alone: this package and one line in KINDS.
"""

from deployments.errors import DomainError
from workers.targets.base import Capability, TargetError
from workers.targets.descriptor import KindDescriptor, Probe, SettingField, check_count

BEHAVIOURS = ("succeed", "fail_permanent", "fail_transient", "slow", "unhealthy", "drift", "status_crashes")


def _check_behaviour(key: str, value) -> str:
    if value not in BEHAVIOURS:
        raise DomainError(f"{key} is one of {', '.join(BEHAVIOURS)}.", path=f"settings.{key}")
    return value


def _check_seconds(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
        raise DomainError(f"{key} is a number of seconds from 0 to 60.", path=f"settings.{key}")
    return value


def translate_error(exc: BaseException, doing: str) -> TargetError | None:
    from workers.targets.fake.adapter import FakeCloudError

    if isinstance(exc, FakeCloudError):
        transient = exc.status in (408, 409, 429) or exc.status >= 500
        return TargetError(f"{doing}: {exc}", permanent=not transient)
    return None


KIND = KindDescriptor(
    name="fake",
    label="Fake (in memory)",
    adapter="workers.targets.fake.adapter:FakeTarget",
    capabilities=frozenset({Capability.LOGS, Capability.RESTART, Capability.ENTRY_SCRIPT}),
    settings=(
        SettingField("behaviour", "Behaviour", _check_behaviour, help=", ".join(BEHAVIOURS)),
        SettingField("transient_failures", "Transient failures", check_count, form=False),
        SettingField("delay_seconds", "Delay (s)", _check_seconds, form=False),
    ),
    probe=Probe.ADAPTER,
    translate_error=translate_error,
    test_only=True,
    note="in memory: nothing runs anywhere",
    guidance="For tests and DEBUG only: behaves as its behaviour setting says.",
    where=lambda settings: f"in memory, {settings.get('behaviour', 'succeed')}",
)
ENDPOINT = KindDescriptor(
    name="fake_endpoint",
    label="Fake endpoint (in memory)",
    adapter="workers.targets.fake.endpoint:FakeEndpointTarget",
    capabilities=frozenset({Capability.TRAFFIC, Capability.LOGS}),
    settings=KIND.settings,
    probe=Probe.ADAPTER,
    translate_error=translate_error,
    test_only=True,
    rollout_signals={
        "failure_rate": "the fake's counters",
        "p95_ms": "the fake's counters",
        "p99_ms": "the fake's counters",
        "queue_share": "the fake's counters",
    },
    failure_reasons=True,
    note="in memory, shaped like an online endpoint: deployments behind one address and a traffic split",
    guidance="For tests only.",
    where=lambda settings: "in memory",
)
KINDS = (KIND, ENDPOINT)
