"""What the API answers, as pydantic schemas: the OpenAPI document is
generated from them, and every answer passes through them, so an answer
cannot say more than the document does. serializers.py builds the dicts
(the pages use them too); these say what the dicts are."""

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field


class Choice(Schema):
    id: int
    name: str
    description: str = ""


class Error(Schema):
    code: str
    message: str
    path: str = ""
    # With `ambiguous` (409): what to name in `path` to ask again.
    choices: list[Choice] | None = None


class Errors(Schema):
    errors: list[Error]


# Errors any authenticated operation can answer; object operations add 404.
_ALWAYS = (400, 401, 403, 413, 429)


def answers(ok: dict, *extra: int) -> dict:
    return {**ok, **dict.fromkeys(sorted({*_ALWAYS, *extra}), Errors)}


def changes(ok: dict, *extra: int) -> dict:
    """A write also meets a wrong state or a race for a unique name (409),
    and a body that is not JSON (415)."""
    return answers(ok, 409, 415, *extra)


class Finding(Schema):
    severity: str
    model: str | None = None
    file: str | None = None
    message: str


class ModelSummary(Schema):
    name: str
    backend: str
    platform: str
    max_batch_size: int | None
    versions: list[int]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    config: str
    warnings: list[str]


class Repository(Schema):
    id: int
    name: str
    line: int
    revision: int
    digest: str
    status: Literal["valid", "invalid"]
    source: str
    source_name: str
    file_count: int
    total_bytes: int
    uploaded_by: str | None
    uploaded_at: datetime
    findings: list[Finding]
    warnings: list[str]
    models: list[ModelSummary]


class RepositoryRecorded(Repository):
    created: bool


class RepositoryList(Schema):
    results: list[Repository]


class LineSummary(Schema):
    id: int
    name: str
    revisions: int
    latest: int | None


class LineList(Schema):
    results: list[LineSummary]


class RunsIn(Schema):
    deployment: int
    name: str
    environment: str
    target: str
    status: str


class RegisteredAs(Schema):
    workspace: str
    model: str = Field(description="the workspace's name:version")
    asset_type: str


class Revision(Schema):
    id: int
    revision: int
    digest: str
    status: Literal["valid", "invalid"]
    uploaded_by: str | None
    uploaded_at: datetime
    runs_in: list[RunsIn] = Field(description="live deployments, in environments the caller may see")
    registered_as: list[RegisteredAs]


class Line(Schema):
    id: int
    name: str
    revisions: list[Revision]


class ModelDiff(Schema):
    name: str
    config_diff: str = Field(description="config.pbtxt, unified diff")
    tensors: list[str]


class RevisionDiff(Schema):
    added: list[str] = Field(description="'<model> v<version>' in `to` only")
    removed: list[str]
    changed: list[str]
    unchanged: int
    models_added: list[str]
    models_removed: list[str]
    models: list[ModelDiff]


class Target(Schema):
    id: int
    name: str
    kind: str
    environment: str
    auth_method: str
    settings: dict[str, Any]
    has_secrets: bool
    last_test: dict[str, Any]


class TargetList(Schema):
    results: list[Target]


class Environment(Schema):
    id: int
    name: str
    approvals_required: int
    approver_group: str | None
    approval_lifetime_hours: int
    approve_deletes: bool
    approve_traffic: bool
    require_rollouts: bool
    load_tests: Literal["off", "allowed", "approval"]
    webhook: bool


class EnvironmentList(Schema):
    results: list[Environment]


class Listing(Schema):
    status: Literal["listing"]


class Decision(Schema):
    by: str
    decision: str
    comment: str
    at: datetime


class DeployRequest(Schema):
    id: int
    kind: str
    status: str
    spec_digest: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approvals_required: int
    approvals: int
    decisions: list[Decision]
    params: dict[str, Any]


class ApprovalState(Schema):
    required: bool
    approvals_required: int
    status: str
    request: DeployRequest | None = None


class RepositoryRef(Schema):
    id: int | None
    name: str
    # None for an adopted deployment (no recorded repository).
    revision: int | None
    digest: str


class Deployment(Schema):
    id: int
    name: str
    target: str
    environment: str
    repository: RepositoryRef
    mode: Literal["triton", "entry_script"]
    status: str
    status_reason: str
    spec_digest: str
    scoring_uri: str
    restarts: int
    updated_at: datetime
    approval: ApprovalState


class Spec(Schema):
    entry_script: str
    pip_packages: list[str]
    worker_count: int
    resources: dict[str, float]
    auth_enabled: bool


class Health(Schema):
    live: bool | None
    ready: bool | None
    checked_at: datetime | None
    models: list[dict[str, Any]]
    reason: str


class Operation(Schema):
    id: int
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "needs_attention"] = Field(
        description="needs_attention: the engine stopped trying (its worker was lost, or a transient error "
        "persisted, OPERATION_MAX_ATTEMPTS times; or the target was still busy after OPERATION_FOLLOW_FOR) "
        "and a person must look. The deployment is then failed, its status_reason starting 'needs attention:'."
    )
    reason: str
    attempts: int = Field(description="Claims so far, waits included.")
    waits: int = Field(description="Claims that found the target still carrying the change out and looked again later.")
    started_at: datetime | None
    finished_at: datetime | None
    error: str
    steps: list[dict[str, Any]]


class DeploymentDetail(Deployment):
    spec: Spec
    health: Health
    operations: list[Operation]


class DeploymentPage(Schema):
    results: list[Deployment]
    next: str | None


class Logs(Schema):
    lines: list[str]
    operations: list[str]


class DeploymentRef(Schema):
    id: int
    name: str


class ApprovalRow(DeployRequest):
    deployment: DeploymentRef
    environment: str


class ApprovalPage(Schema):
    results: list[ApprovalRow]
    next_before: int | None


class OutputTensor(Schema):
    name: str
    datatype: str
    shape: list[int]
    data: Any


class Latency(Schema):
    client: float
    server: float | None


class InferResult(Schema):
    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    latency_ms: Latency


class AuditEvent(Schema):
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    object_repr: str
    environment: str
    details: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str
    source_ip: str | None
    hash: str


class AuditChange(Schema):
    path: str = Field(
        description="the key, nested keys joined by dots (`resources.gpu_cores`); empty for the whole value"
    )
    change: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class AuditEventDetail(AuditEvent):
    prev_hash: str
    key_id: str
    changes: list[AuditChange]
    previous: str | None = Field(description="the event before it that the caller may see")
    next: str | None = Field(description="the event after it that the caller may see")
    same_request: list[int] = Field(description="seqs of the other events of its request that the caller may see")


class AuditPage(Schema):
    results: list[AuditEvent]
    next: str | None


class ChainReport(Schema):
    ok: bool
    checked: int
    first_bad_seq: int | None


class Workers(Schema):
    online: int
    last_seen: datetime | None


class SystemHealth(Schema):
    status: Literal["ok", "error"]
    database: str
    broker: str
    workers: Workers


class RolloutSide(Schema):
    name: str
    spec_digest: str


class RolloutCandidate(RolloutSide):
    repository: RepositoryRef
    worker_count: int | None
    resources: dict[str, float]


class RolloutStepState(Schema):
    index: int
    traffic: int
    bake_seconds: int
    status: Literal["pending", "shifting", "baking", "passed", "failed", "skipped"]
    started_at: datetime | None
    ended_at: datetime | None
    figures: dict[str, Any] = Field(
        description="{baseline, candidate}: requests, failures by reason, failure_rate, mean_ms, p95_ms, p99_ms, "
        "queue_share over the bake window so far"
    )
    verdict: dict[str, Any] = Field(
        description="{passed, final, checks: [{gate, baseline, candidate, limit, rule, source, passed, note}], golden}"
    )


class Rollout(Schema):
    id: int
    deployment: DeploymentRef
    status: Literal["pending_approval", "running", "paused", "promoted", "rolled_back", "aborted", "failed"]
    phase: str = Field(description="candidate, shifting, baking, finishing, rolling_back, cleaning_up or done")
    reason: str
    step: int | None = Field(description="the step under way (1-based), null before the first")
    plan_digest: str
    released_digest: str | None = Field(description="the plan digest let through (approved, or no approval asked)")
    approval_request: int | None
    baseline: RolloutSide
    candidate: RolloutCandidate
    gates: dict[str, Any]
    golden_requests: list[str]
    on_rollback: Literal["keep", "remove"]
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    steps: list[RolloutStepState]


class RolloutPage(Schema):
    results: list[Rollout]


class MigrationSide(Schema):
    id: int
    name: str
    target: str
    status: str
    scoring_uri: str


class Migration(Schema):
    id: int
    status: Literal["deploying", "deployed", "comparing", "compared", "cutting_over", "done", "failed", "abandoned"]
    reason: str
    source: MigrationSide
    destination: MigrationSide
    golden_requests: list[str]
    comparison: dict[str, Any] | None = Field(
        description="{at, passed, golden: [{name, source, destination, same}], latency: {source, destination}}"
    )
    forced_because: str
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None


class ServerSplit(Schema):
    """Triton's statistics between the point's first and last window: per
    successful request, microseconds in each part; and the batches it ran."""

    requests: int | None = None
    failures: int | None = None
    queue_us: float | None = None
    compute_input_us: float | None = None
    compute_infer_us: float | None = None
    compute_output_us: float | None = None
    executions: int | None = None
    inferences: int | None = None
    batch: float | None = Field(None, description="inferences per execution: the average batch Triton ran")


class LoadPoint(Schema):
    concurrency: int
    throughput: float = Field(description="successful inferences per second over the point's last three windows")
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    stable: bool = Field(description="the last three windows agreed within the stability fraction")
    trials: int = Field(description="measurement windows taken")
    requests: int = Field(description="every answer the point got, its warm-up and tail included")
    errors: int
    error_samples: list[str]
    stopped: str | None = Field(description="why the run stopped during this point (a bound, a cancel)")
    server: ServerSplit


class LoadTest(Schema):
    id: int
    deployment: DeploymentRef
    model: str
    version: str | None
    label: str
    status: Literal["awaiting_approval", "queued", "running", "succeeded", "failed", "cancelled"]
    error: str
    concurrency: list[int]
    window_seconds: float
    window_requests: int | None
    stability: float
    max_trials: int
    max_requests: int
    max_seconds: int
    inputs: Literal["random", "zeros", "saved"]
    saved_request: str | None
    endpoint_deployment: str | None = Field(description="the endpoint's deployment that took the load")
    spec_digest: str | None
    progress: dict[str, Any] | None = Field(description="while running: {concurrency, trial}")
    requests_sent: int
    points: list[LoadPoint]
    requested_by: str | None
    approved_by: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class LoadTestPage(Schema):
    results: list[LoadTest]


class SearchBest(Schema):
    index: int = Field(description="into results")
    concurrency: int
    throughput: float


class SearchResult(Schema):
    config: dict[str, Any]
    label: str
    error: str | None
    points: list[LoadPoint]


class ConfigSearch(Schema):
    id: int
    repository: dict[str, Any]
    model: str
    target: str
    deployment: DeploymentRef | None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    error: str
    grid: list[dict[str, Any]]
    concurrency: list[int]
    latency_budget_ms: float
    progress: dict[str, Any] | None
    results: list[SearchResult]
    best_within_budget: SearchBest | None
    best_throughput: SearchBest | None
    created_revision: str | None
    created_at: datetime
    ended_at: datetime | None


class RevisionMade(Schema):
    id: int
    label: str
    digest: str
