"""The local target: a real Triton Inference Server (the binary inside the
nvidia-pytriton wheel) per deployment on this machine, adapted for CPU."""

from django.conf import settings

from deployments.errors import DomainError
from workers.targets.base import Capability, TargetError
from workers.targets.descriptor import KindDescriptor, SettingField, check_azure_name


def _warnings() -> list[str]:
    if settings.LOCAL_TARGET_SANDBOX:
        return []
    return [
        "LOCAL_TARGET_SANDBOX is off: model code deployed here runs with the dashboard's own rights and can read "
        "its files, environment and database. Only for machines where every deployer is trusted."
    ]


def _check_memory(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 256 <= value <= 1024 * 1024:
        raise DomainError(f"{key} is a whole number of MB from 256.", path=f"settings.{key}")
    return value


def translate_error(exc: BaseException, doing: str) -> TargetError | None:
    import httpx

    # Network and file-system trouble around the server: a later attempt may
    # find the port free, the disk cleared, the server up.
    if isinstance(exc, (httpx.HTTPError, OSError)):
        return TargetError(f"{doing}: {type(exc).__name__}: {exc}", permanent=False)
    return None


KIND = KindDescriptor(
    name="local",
    label="Local Triton",
    adapter="workers.targets.local.adapter:LocalTarget",
    capabilities=frozenset(
        {
            Capability.METRICS,
            Capability.LOGS,
            Capability.RESTART,
            Capability.ENTRY_SCRIPT,
            Capability.TRAFFIC,
            Capability.KEYS,
        }
    ),
    settings=(
        SettingField(
            "host",
            "Host",
            check_azure_name,
            help=(
                "the worker host that runs this target's servers; empty: the host each dashboard process runs on "
                "(WORKER_HOST). Name it when workers run on several hosts."
            ),
        ),
        SettingField(
            "memory_limit_mb",
            "Memory limit (MB)",
            _check_memory,
            help="address space each deployment's sandbox may use (default LOCAL_TARGET_MEMORY_MB, 8192)",
            form=False,
        ),
    ),
    host_bound=True,
    scratch_deployments=True,
    entry_exposes_triton=True,
    # Each Triton deployment's own /metrics, with its latency summaries on.
    rollout_signals={
        "failure_rate": "Triton /metrics: nv_inference_request_failure by reason",
        "p95_ms": "Triton /metrics latency summary nv_inference_request_summary_us (quantile 0.95)",
        "p99_ms": "Triton /metrics latency summary nv_inference_request_summary_us (quantile 0.99)",
        "queue_share": "Triton /metrics: nv_inference_queue_duration_us / nv_inference_request_duration_us",
        "golden": "golden requests through the endpoint (azureml-model-deployment header)",
    },
    failure_reasons=True,
    warnings=_warnings,
    available=lambda: settings.LOCAL_TARGET_ENABLED,
    translate_error=translate_error,
    note="local CPU emulation: no GPU, ONNX through onnxruntime",
    traffic_note=(
        "A redeploy with a changed spec starts its own deployment beside the running one and moves all traffic to "
        "it once every model is ready; a rollout keeps both and shifts the split step by step."
    ),
    guidance="Name, kind and environment are enough; its servers run on the host named (this one by default).",
    where=lambda target_settings: f"host {target_settings['host']}" if target_settings.get("host") else "this host",
)
KINDS = (KIND,)
