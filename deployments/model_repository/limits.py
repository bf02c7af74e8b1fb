from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class IntakeLimits:
    """What an upload or import may contain; exceeding one rejects it whole."""

    max_entries: int
    max_total_bytes: int
    max_ratio: int
    max_config_bytes: int

    @classmethod
    def from_settings(cls) -> "IntakeLimits":
        return cls(
            max_entries=settings.REPOSITORY_MAX_ENTRIES,
            max_total_bytes=settings.REPOSITORY_MAX_TOTAL_BYTES,
            max_ratio=settings.REPOSITORY_MAX_COMPRESSION_RATIO,
            max_config_bytes=settings.REPOSITORY_MAX_CONFIG_BYTES,
        )
