"""The deployment page's batching insight: per model, what its config allows
(max_batch_size, dynamic batching and its preferred sizes) beside what Triton
did over the last reads (the average executed batch, inferences ÷
executions; the queue's share of request time) and a plain hint.

It reads only what the minute's scrape stored (`Deployment.metrics_last`,
see deployments/health/metrics.py and statistics.py) and the repository's
TritonModel rows: showing the page never calls the target, so it stays fast
and answers the same when the target is down. The price is a minute's lag,
which the panel states ("as read at 12:03").
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from deployments.health import counter_source, counter_window
from deployments.health.counter_window import ModelWindow
from deployments.models import TritonModel
from deployments.selectors.batching_hints import BatchingConfig, hint

# A last read older than this is stated: the deployment stopped answering, or the scrape stopped.
STALE_SECONDS = 3 * 60


@dataclass
class ModelBatching:
    model: str
    versions: list[int]
    config: BatchingConfig
    window: ModelWindow | None
    hint: str

    @property
    def dynamic_words(self) -> str:
        if self.config.max_batch_size == 0 and self.config.scheduler != "ensemble":
            return "n/a (does not batch)"
        return {
            "dynamic": "on",
            "none": "off",
            "sequence": "sequence batcher",
            "ensemble": "ensemble",
        }.get(self.config.scheduler, "unknown")


@dataclass
class BatchingInsight:
    source: str
    source_words: str = ""
    # Why there are no counters (source NONE), or why none were read yet.
    missing: str = ""
    read_at: datetime | None = None
    window_start: datetime | None = None
    span: str = ""
    stale: bool = False
    models: list[ModelBatching] = field(default_factory=list)

    @property
    def has_counters(self) -> bool:
        return self.source != counter_source.NONE


def batching_insight(deployment) -> BatchingInsight:
    source = counter_source.source_for(deployment)
    configs = _configs(deployment)
    if source == counter_source.NONE:
        rows = [ModelBatching(name, versions, config, None, "") for name, (versions, config) in configs.items()]
        return BatchingInsight(source=source, missing=counter_source.why_none(deployment), models=rows)
    insight = BatchingInsight(source=source, source_words=counter_source.DESCRIPTIONS[source])
    last = deployment.metrics_last or {}
    if not last.get("at") or "history" not in last:
        insight.missing = "Not read yet: Triton's counters are read once a minute while the deployment runs."
    seen = counter_window.window(last) if last.get("at") else counter_window.Window(start=None, end=None)
    if seen.end:
        insight.read_at = _time(seen.end)
        insight.stale = timezone.now().timestamp() - seen.end > STALE_SECONDS
    if seen.start is not None:
        insight.window_start = _time(seen.start)
    insight.span = _span(seen.seconds)
    names = list(configs) + sorted(set(seen.lifetime) - set(configs) - {""})
    for name in names:
        versions, config = configs.get(name, ([], BatchingConfig()))
        window = seen.models.get(name) if seen.start is not None else None
        said = hint(config, window, seen.lifetime.get(name), insight.span) if seen.end else ""
        insight.models.append(ModelBatching(name, versions, config, window, said))
    return insight


def _configs(deployment) -> dict[str, tuple[list[int], BatchingConfig]]:
    """{model: (served versions, batching config)} from the deployed repository."""
    if deployment.repository_id is None:
        return {}
    return {
        model.name: (model.served_versions, batching_config(model))
        for model in TritonModel.objects.filter(repository_id=deployment.repository_id).order_by("name")
    }


def batching_config(model: TritonModel) -> BatchingConfig:
    if model.platform == "ensemble":
        return BatchingConfig(scheduler="ensemble", max_batch_size=model.max_batch_size)
    if model.config_source != TritonModel.ConfigSource.EXPLICIT:
        # Auto-complete fills max_batch_size and may add dynamic batching itself: only Triton knows.
        known = model.config_source == TritonModel.ConfigSource.AUTO_COMPLETE and model.max_batch_size
        return BatchingConfig(max_batch_size=model.max_batch_size if known else None)
    config = mc.ModelConfig()
    try:
        text_format.Parse(model.config_text, config)
    except text_format.ParseError:
        return BatchingConfig(max_batch_size=model.max_batch_size)
    if config.HasField("dynamic_batching"):
        dynamic = config.dynamic_batching
        return BatchingConfig(
            scheduler="dynamic",
            max_batch_size=config.max_batch_size,
            preferred=tuple(sorted(dynamic.preferred_batch_size)),
            max_queue_delay_us=dynamic.max_queue_delay_microseconds,
        )
    scheduler = "sequence" if config.HasField("sequence_batching") else "none"
    return BatchingConfig(scheduler=scheduler, max_batch_size=config.max_batch_size)


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _span(seconds: float) -> str:
    if seconds >= 90:
        return f"{round(seconds / 60)} minutes"
    if seconds >= 60:
        return "1 minute"
    return f"{max(1, round(seconds))} seconds"
