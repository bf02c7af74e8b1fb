"""What the API accepts, as pydantic schemas. Every body forbids fields it
does not document: a misspelt `worker_cout` is a 400 naming it, not a
deploy with the default. The services still check what only they can
(names, entry scripts, roles, traffic against the endpoint)."""

from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationInfo, model_validator

from deployments.console.infer import MAX_TIMEOUT
from deployments.models import Deployment
from workers.targets.descriptor import RESOURCE_LIMITS


class Body(Schema):
    model_config = ConfigDict(extra="forbid")


def _number(**bounds):
    """An int or a float within bounds, never a bool or a string; ints stay
    ints (a spec's digest is taken over its JSON)."""
    return Annotated[StrictInt, Field(**bounds)] | Annotated[StrictFloat, Field(**bounds)]


def _amount(limit: int):
    return _number(ge=0, le=limit)


class Resources(Body):
    gpu_cores: _amount(RESOURCE_LIMITS["gpu_cores"]) | None = None
    cpu_cores: _amount(RESOURCE_LIMITS["cpu_cores"]) | None = None
    memory_gb: _amount(RESOURCE_LIMITS["memory_gb"]) | None = None


ByIdOrName = Annotated[StrictInt | str, Field(description="an id, or the name")]
Mode = Literal[tuple(Deployment.Mode.values)]
WorkerCount = Annotated[StrictInt, Field(ge=1, le=32, description="WORKER_COUNT of the inference server")]


class SpecChanges(Body):
    """Fields of the spec; a redeploy changes those it is given."""

    mode: Mode | None = None
    entry_script: str | None = Field(None, description="score.py text, for mode entry_script")
    pip_packages: list[str] | None = None
    worker_count: WorkerCount | None = None
    resources: Resources | None = None
    auth_enabled: StrictBool | None = None


class Redeploy(SpecChanges):
    """A redeploy may also move the deployment to another revision."""

    repository: ByIdOrName | None = Field(None, description="a revision's id, or a line's name for its latest revision")
    confirm_other_line: StrictBool = Field(False, description="needed when the revision is of another line")


class Promotion(Body):
    environment: ByIdOrName
    target: ByIdOrName | None = Field(None, description="where a new deployment goes, when several targets could")
    deployment: StrictInt | None = Field(
        None, description="the destination deployment to update, when several of the line run there"
    )
    name: str = Field("", description="a new deployment's name (default: the promoted one's)")
    force: StrictBool = Field(False, description="promote a deployment that is not healthy (recorded in the audit)")


class DeploymentCreate(SpecChanges):
    name: str
    repository: ByIdOrName
    target: ByIdOrName


class Comment(Body):
    comment: str = ""


class Traffic(Body):
    traffic: dict[str, Annotated[StrictInt, Field(ge=0, le=100)]] = Field(
        description="deployment name -> whole percentage; the shares add up to 100"
    )


class TargetCreate(Body):
    name: str
    kind: str
    environment: str
    auth_method: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] | None = Field(None, description="write-only: never returned")


class RepositoryImport(Body):
    name: str = ""
    path: str = Field(description="an absolute directory under one of REPOSITORY_IMPORT_ROOTS")


class RepositoryUpload(Body):
    """multipart/form-data"""

    name: str = ""
    archive: bytes = Field(json_schema_extra={"format": "binary"}, description="a .zip or .tar.gz")


class InferInput(Body):
    name: str
    datatype: str
    shape: list[StrictInt]
    data: Any = Field(None, description="the values, flat or nested (mode json), or the text (mode text)")
    mode: Literal["json", "random", "text"] = "json"
    seed: StrictInt | None = Field(None, description="for mode random")
    binary_data: StrictBool | None = None


class InferOutput(Body):
    name: str
    class_count: Annotated[StrictInt, Field(ge=0)] = 0


class InferRequest(Body):
    model: str = Field(min_length=1)
    version: str = ""
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[InferOutput] | None = None
    binary_data: StrictBool = True
    request_id: str = ""
    timeout: _number(gt=0, le=MAX_TIMEOUT) = 10.0
    server_timing: StrictBool = False


class Query(Schema):
    """A query string takes only its documented parameters: `?staus=failed`
    would otherwise list everything."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _keep_the_unknown(cls, data, info: ValidationInfo):
        # ninja hands over only the parameters it knows: put the others back
        # for extra="forbid" to name.
        request = (info.context or {}).get("request")
        if request is None or not isinstance(data, dict):
            return data
        unknown = {key: request.GET[key] for key in request.GET if key not in cls.model_fields}
        return {**data, **unknown}


class DeploymentQuery(Query):
    target: str = ""
    environment: str = ""
    name: str = Field("", description="the deployment's name (one live deployment per target has it)")
    status: Literal[("", *Deployment.Status.values)] = ""
    after: int | None = Field(None, description="the last id of the previous page (see `next`)")


class AuditQuery(Query):
    actor: str = ""
    action: str = Field("", description="an action, or a family such as `deployment.`")
    object: str = Field("", description="`type` or `type:id`")
    environment: str = ""
    since: str = Field("", description="ISO 8601")
    until: str = Field("", description="ISO 8601")
    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(None, ge=1, description="the seq to page before (see `next`)")


class ApprovalQuery(Query):
    tab: Literal["waiting", "mine", "recent"] = "waiting"
    before: int | None = None


class LogQuery(Query):
    tail: int = Field(200, ge=1, le=5000)


class RolloutPlanStep(Body):
    traffic: StrictInt = Field(description="the candidate's share (%), growing step by step to 100")
    bake_seconds: StrictInt = Field(description="how long the step runs before its gates pass it")


class RolloutCreate(Body):
    spec: Redeploy | None = Field(None, description="the candidate: spec fields that change, and/or another revision")
    steps: list[RolloutPlanStep]
    gates: dict[str, Any] | None = Field(
        None,
        description="{gate: {max_ratio, floor}} for failure_rate (and its reasons), p95_ms, p99_ms, queue_share, "
        "plus min_requests; default: every gate the target's kind can measure",
    )
    golden_requests: list[dict[str, Any]] | None = Field(
        None,
        description="[{name, model, version?, inputs: [{name, datatype, shape, data}], expected: [{name, data}], "
        "tolerance?: {abs, rel}}]: sent to the candidate at every look",
    )
    on_rollback: Literal["keep", "remove"] = Field("keep", description="what happens to a rolled-back candidate")


class RolloutAbort(Body):
    reason: str = ""


class MigrationCreate(Body):
    target: ByIdOrName = Field(description="a target of the same environment with online endpoints (SDK v2)")
    name: str = Field("", description="the new deployment's name (default: the same)")
    repository: ByIdOrName | None = Field(
        None, description="for an adopted service: the revision that holds its models"
    )
    golden_requests: list[dict[str, Any]] | None = Field(
        None, description="compared on both sides, beside those saved for the deployment"
    )


class CutOver(Body):
    force: StrictBool = Field(False, description="cut over although the comparison found differences")
    because: str = Field("", description="why, when forced (recorded in the audit)")


class LoadTestCreate(Body):
    model: str = Field(description="a model the deployment serves")
    version: StrictInt | str | None = Field(None, description="one of its served versions (default: Triton's choice)")
    concurrency: list[StrictInt] = Field(description="clients at once for each point, growing, e.g. [1, 2, 4, 8]")
    window_seconds: StrictInt | StrictFloat | None = Field(None, description="a measurement window, 0.5 to 30 s (2)")
    window_requests: StrictInt | None = Field(
        None, description="count windows instead: answers per window (perf_analyzer's count_windows)"
    )
    max_trials: StrictInt | None = Field(None, description="windows per point before it is reported unstable (10)")
    stability: StrictInt | StrictFloat | None = Field(
        None, description="the last three windows agree within this fraction, 0.01 to 0.5 (0.1)"
    )
    max_requests: StrictInt | None = Field(None, description="the run's bound in requests (default: the server's)")
    max_seconds: StrictInt | None = Field(None, description="the run's bound in seconds (default: the server's)")
    inputs: Literal["random", "zeros", "saved"] = Field(
        "random", description="what each request carries: seeded random values, zeros, or a saved request"
    )
    saved_request: ByIdOrName | None = Field(None, description="with inputs=saved: a request saved from the console")
    body: str | None = Field(None, description="entry-script deployments: the JSON body sent to /score")
    label: str = Field("", description="tells runs apart in a comparison, e.g. 'before batching'")


class ConfigSearchCreate(Body):
    repository: ByIdOrName = Field(description="the revision whose model is tried under each config")
    model: str
    target: ByIdOrName = Field(description="a local target: scratch deployments run there")
    grid: list[dict[str, Any]] | None = Field(
        None,
        description="[{dynamic_batching, max_queue_delay_us, instances}]; default: batching off/on at 1 and 2 "
        "instances, and a 2 ms queue delay",
    )
    concurrency: list[StrictInt] | None = Field(None, description="each config's sweep (default [1, 4, 8])")
    latency_budget_ms: StrictInt | StrictFloat | None = Field(None, description="the p95 to stay within (100)")
    window_seconds: StrictInt | StrictFloat | None = Field(None, description="0.5 to 10 s (1)")
    max_trials: StrictInt | None = None
    deployment: StrictInt | None = Field(None, description="the deployment it was asked from, if any")


class RevisionFromSearch(Body):
    which: Literal["latency", "throughput"] = Field(
        "latency", description="the best config within the latency budget, or the best for throughput"
    )
