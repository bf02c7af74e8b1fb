"""One adapter per kind of target (DESIGN.md "Targets")."""

from workers.targets.base import TargetAdapter, TargetError


def adapter_for(target) -> TargetAdapter:
    from workers.targets.local import LocalTarget

    adapters = {"local": LocalTarget}
    try:
        return adapters[target.kind](target)
    except KeyError:
        raise TargetError(f"targets of kind {target.kind!r} are not supported yet", permanent=True) from None


__all__ = ["TargetAdapter", "TargetError", "adapter_for"]
