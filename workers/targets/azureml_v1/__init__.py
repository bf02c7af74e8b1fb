"""Azure ML SDK v1 AKS webservices (azureml-core, the seed guide's API; its
support ended on 2026-06-30: kept for existing webservices and for moving them)."""

from workers.targets import azure
from workers.targets.azure import settings as azure_settings
from workers.targets.base import Capability
from workers.targets.descriptor import KindDescriptor, Probe

KIND = KindDescriptor(
    name="azureml_v1_aks",
    label="Azure ML v1 (AKS)",
    adapter="workers.targets.azureml_v1.adapter:AzureMLv1Target",
    capabilities=frozenset({Capability.ADOPT, Capability.LOGS, Capability.KEYS, Capability.ENTRY_SCRIPT}),
    end_of_support="2026-06-30",
    settings=(*azure_settings.WORKSPACE, azure_settings.COMPUTE, azure_settings.replicas("num_replicas")),
    # An entry-script webservice answers /score alone: Azure's state is the signal.
    entry_probe=Probe.ADAPTER,
    # AksWebservice.deploy_configuration(gpu_cores=, cpu_cores=, memory_gb=).
    deployment_resources=("gpu_cores", "cpu_cores", "memory_gb"),
    guidance="The workspace (subscription, resource group, name), its attached AKS compute, and how to authenticate.",
    **azure.KIND_DEFAULTS,
)
KINDS = (KIND,)
