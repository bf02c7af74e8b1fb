"""One adapter per kind of target (DESIGN.md "Targets")."""

from workers.targets.base import TargetAdapter, TargetError


def adapter_for(target) -> TargetAdapter:
    from workers.targets.azureml_v1 import AzureMLv1Target
    from workers.targets.azureml_v2 import AzureMLv2Target
    from workers.targets.local import LocalTarget

    adapters = {
        "local": LocalTarget,
        "azureml_v1_aks": AzureMLv1Target,
        "azureml_v2_kubernetes": AzureMLv2Target,
        "azureml_v2_managed": AzureMLv2Target,
    }
    try:
        return adapters[target.kind](target)
    except KeyError:
        raise TargetError(f"targets of kind {target.kind!r} are not supported yet", permanent=True) from None


__all__ = ["TargetAdapter", "TargetError", "adapter_for"]
