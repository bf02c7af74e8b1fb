from django.conf import settings
from django.db import models

from deployments import policy


class LoadTestQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(
            self, user, "deployments.view_deployment", environment_field="deployment__target__environment_id"
        )


class RunStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BackgroundRun(models.Model):
    """What a load test and a config search share: a Celery job that claims
    its row, beats while it runs, can be asked to stop, and ends with the
    truth (services/background_runs.py)."""

    Status = RunStatus
    TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    # Live: where the job is (the page's progress line).
    progress = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class LoadTest(BackgroundRun):
    """A bounded sweep of closed-loop load over concurrencies against one
    model of one deployment, through its own endpoint only, measured as
    perf_analyzer measures (deployments/loadlab/generator.py). Each point is
    kept with Triton's server-side split, for charts, CSV and comparison."""

    ACTIVE = {RunStatus.AWAITING_APPROVAL, RunStatus.QUEUED, RunStatus.RUNNING}

    class Inputs(models.TextChoices):
        RANDOM = "random", "Random values"
        ZEROS = "zeros", "Zeros"
        SAVED = "saved", "A request saved from the console"

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="load_tests")
    model = models.CharField(max_length=200)
    version = models.CharField(max_length=20, blank=True)
    # What tells two runs apart in a comparison ("before the batching change").
    label = models.CharField(max_length=100, blank=True)
    concurrency = models.JSONField()
    window_seconds = models.FloatField(default=2.0)
    # Count windows (perf_analyzer's count_windows) when above 0.
    window_requests = models.PositiveIntegerField(default=0)
    stability = models.FloatField(default=0.10)
    max_trials = models.PositiveSmallIntegerField(default=10)
    max_requests = models.PositiveIntegerField()
    max_seconds = models.PositiveIntegerField()
    inputs = models.CharField(max_length=8, choices=Inputs.choices, default=Inputs.RANDOM)
    # The saved request's inputs as they were when the test was asked for.
    saved_inputs = models.JSONField(default=list, blank=True)
    saved_name = models.CharField(max_length=100, blank=True)
    # Entry-script deployments: the JSON body every request sends to /score.
    score_body = models.TextField(blank=True)

    # What was loaded: the endpoint's deployment, its spec, the address (no key).
    endpoint_deployment = models.CharField(max_length=63, blank=True)
    spec_digest = models.CharField(max_length=64, blank=True)
    mode = models.CharField(max_length=16, blank=True)
    # One per concurrency measured (generator.Point.as_json()).
    points = models.JSONField(default=list, blank=True)
    requests_sent = models.PositiveBigIntegerField(default=0)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = LoadTestQuerySet.as_manager()

    class Meta(BackgroundRun.Meta):
        indexes = [models.Index(fields=["status"], name="loadtest_status")]

    def __str__(self):
        return f"load test #{self.pk}"

    @property
    def environment(self):
        return self.deployment.target.environment

    @property
    def best_point(self) -> dict | None:
        return max(self.points, key=lambda p: p["throughput"], default=None)

    @property
    def mode_label(self) -> str:
        return "entry script" if self.mode == "entry_script" else "direct Triton"

    @property
    def title(self) -> str:
        version = f" v{self.version}" if self.version else ""
        return f"#{self.pk} {self.model}{version}" + (f" · {self.label}" if self.label else "")


class ConfigSearchQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(self, user, "deployments.view_deployment", environment_field="target__environment_id")


class ConfigSearch(BackgroundRun):
    """Model Analyzer's job from the dashboard: one model of a repository
    revision served under each config of a small grid (dynamic batching,
    queue delay, instance count) on scratch deployments of a local target,
    swept like a load test; the best config under a latency budget and the
    best for throughput are reported. Scratch deployments are recorded in
    `scratch` before they start and removed whatever happens
    (deployments/loadlab/search.py, and the reconciler after a lost worker)."""

    ACTIVE = {RunStatus.QUEUED, RunStatus.RUNNING}

    repository = models.ForeignKey("deployments.ModelRepository", on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    target = models.ForeignKey("deployments.Target", on_delete=models.CASCADE, related_name="config_searches")
    # Where it was asked from (the page goes back there); may be gone since.
    deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="config_searches"
    )
    # [{"dynamic_batching": bool, "max_queue_delay_us": int, "instances": int}, ...]
    grid = models.JSONField()
    concurrency = models.JSONField()
    latency_budget_ms = models.FloatField()
    window_seconds = models.FloatField(default=1.0)
    max_trials = models.PositiveSmallIntegerField(default=6)
    # Per config: {"config", "config_text", "points", "error", "best"}.
    results = models.JSONField(default=list, blank=True)
    # The two recommendations, each {"index" (into results), "concurrency", "throughput"} or None:
    # {"latency": the best within the budget, "throughput": the best at any latency}.
    best = models.JSONField(default=dict, blank=True)
    # Local ids of scratch deployments started and not yet removed.
    scratch = models.JSONField(default=list, blank=True)
    # The revision made from a recommended config ("Create a revision with this config").
    created_revision = models.ForeignKey(
        "deployments.ModelRepository", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ConfigSearchQuerySet.as_manager()

    class Meta(BackgroundRun.Meta):
        indexes = [models.Index(fields=["status"], name="configsearch_status")]

    def __str__(self):
        return f"config search #{self.pk}"

    @property
    def environment(self):
        return self.target.environment
