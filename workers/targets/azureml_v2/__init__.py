"""Azure ML SDK v2 (azure-ai-ml) online endpoints, on an attached Kubernetes
compute or on managed compute: one adapter, two kinds."""

from workers.targets import azure
from workers.targets.azure import settings as azure_settings
from workers.targets.base import Capability
from workers.targets.descriptor import KindDescriptor

# One stable address per endpoint that routes by the split; the
# azureml-model-deployment header reaches one deployment (Azure's own Triton
# samples call /v2 under the scoring URI's parent path).
_PROBES = {"probe_each_deployment": True}
# Azure does not pass Triton's /metrics through the endpoint: counts and
# times come from Triton's statistics extension reached through it (by
# header), percentiles from Azure Monitor's per-deployment metrics.
_STATISTICS = "Triton's statistics extension through the endpoint (azureml-model-deployment header)"
_ROLLOUTS = {
    "rollout_signals": {
        "failure_rate": _STATISTICS,
        "p95_ms": "Azure Monitor metric RequestLatency_P95 of the deployment",
        "p99_ms": "Azure Monitor metric RequestLatency_P99 of the deployment",
        "queue_share": _STATISTICS,
        "golden": "golden requests through the endpoint (azureml-model-deployment header)",
    },
    "failure_reasons": False,
}

# Entry-script mode is not built for SDK v2 yet: the capability is left out.
_CAPABILITIES = frozenset({Capability.TRAFFIC, Capability.LOGS, Capability.KEYS})
# An online deployment's size is the target's instance type and count, not
# per-deployment cores (the adapter passes no resources).
_SIZING = {"sizing": azure_settings.instance_sizing}
_TRAFFIC_NOTE = (
    "A new spec starts as its own Azure deployment at 0%. Shift traffic gradually (e.g. 10%, then 100%); "
    "roll back by sending 100% to the previous one."
)

KUBERNETES = KindDescriptor(
    name="azureml_v2_kubernetes",
    label="Azure ML v2 (Kubernetes)",
    adapter="workers.targets.azureml_v2.adapter:AzureMLv2KubernetesTarget",
    capabilities=_CAPABILITIES,
    traffic_note=_TRAFFIC_NOTE,
    **_PROBES,
    **_ROLLOUTS,
    **_SIZING,
    settings=(
        *azure_settings.WORKSPACE,
        azure_settings.COMPUTE,
        azure_settings.INSTANCE_TYPE,
        azure_settings.replicas("instance_count"),
        azure_settings.LOCATION,
    ),
    guidance="The workspace, its attached Kubernetes compute and one of its instance types, and how to authenticate.",
    **azure.KIND_DEFAULTS,
)
MANAGED = KindDescriptor(
    name="azureml_v2_managed",
    label="Azure ML v2 (managed)",
    adapter="workers.targets.azureml_v2.adapter:AzureMLv2Target",
    capabilities=_CAPABILITIES,
    traffic_note=_TRAFFIC_NOTE,
    **_PROBES,
    **_ROLLOUTS,
    **_SIZING,
    settings=(
        *azure_settings.WORKSPACE,
        azure_settings.INSTANCE_TYPE,
        azure_settings.replicas("instance_count"),
        azure_settings.LOCATION,
    ),
    guidance="The workspace, a VM instance type with GPU quota in its region (e.g. Standard_NC6s_v3), and how to "
    "authenticate.",
    **azure.KIND_DEFAULTS,
)
KINDS = (KUBERNETES, MANAGED)
