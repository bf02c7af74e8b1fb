from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Status

from deployments import policy
from deployments.api.bodies import (
    Comment,
    DeploymentCreate,
    DeploymentQuery,
    InferRequest,
    LogQuery,
    Promotion,
    Redeploy,
    Traffic,
)
from deployments.api.errors import NotFound
from deployments.api.pages import next_link
from deployments.api.parser import check_declared_size, parse_as
from deployments.api.schemas import Deployment, DeploymentDetail, DeploymentPage, InferResult, Logs, answers, changes
from deployments.console.infer import MAX_RESPONSE_BYTES, RELAY_CHUNK, console_infer, console_infer_binary
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.models import Deployment as DeploymentRow
from deployments.models import DeployRequest, Environment, ModelRepository, Target
from deployments.selectors import deployments as selecting
from deployments.serializers import deployment_json
from deployments.services import approvals as deciding
from deployments.services import deployments as deploying
from deployments.services import promotion
from deployments.services.permissions import require

router = Router(tags=["deployments"])

PAGE_SIZE = 50
# Bodies read by the operation itself (see api.py).
BODIES = (InferRequest,)


def _by_id_or_name(queryset, value, label: str):
    """Objects are named by id or by name; either way only visible ones are found."""
    if value == "":
        raise DomainError(f"'{label}' is required (an id or a name).", path=label)
    found = queryset.filter(pk=value).first() if isinstance(value, int) else queryset.filter(name=value).first()
    if found is None:
        raise DomainError(f"No {label} {value!r} that you may use.", code="not_found", path=label)
    return found


def _revision(request, value) -> ModelRepository:
    """A revision by id, or a line by name for its latest revision (a
    revision's name is its line's)."""
    return _by_id_or_name(ModelRepository.objects.visible_to(request.user).order_by("-revision"), value, "repository")


def spec_change(request, body: Redeploy | None) -> dict:
    """A redeploy's (or a rollout's) body as the services take it: the spec
    fields given, the revision, and whether another line's is meant."""
    if body is None:
        return {"changes": {}, "repository": None, "confirm_other_line": False}
    return {
        "changes": body.model_dump(exclude_unset=True, exclude_none=True, exclude={"repository", "confirm_other_line"}),
        "repository": _revision(request, body.repository) if body.repository is not None else None,
        "confirm_other_line": body.confirm_other_line,
    }


def _visible(request, deployment_id: int) -> DeploymentRow:
    found = selecting.deployment_detail(request.user, deployment_id)
    if found is None:
        raise NotFound("No such deployment.")
    return found


@router.get("deployments", response=answers({200: DeploymentPage}), url_name="deployments")
def deployment_list(request: HttpRequest, filters: Query[DeploymentQuery]):
    """Newest first, 50 a page; `next` links the following page."""
    if not policy.can_somewhere(request.user, "deployments.view_deployment"):
        raise NotAllowed("Seeing deployments needs the viewer role or above.")
    rows = selecting.visible_deployments(request.user, **filters.model_dump(exclude={"after"})).order_by("-id")
    if filters.after is not None:
        rows = rows.filter(pk__lt=filters.after)
    page = list(rows[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    return {
        "results": [deployment_json(d) for d in page[:PAGE_SIZE]],
        "next": next_link(request, "api:deployments", "after", page[PAGE_SIZE - 1].pk) if more else None,
    }


@router.post("deployments", response=changes({201: Deployment}))
def deployment_create(request: HttpRequest, body: DeploymentCreate):
    """201; `pending_approval` where the environment asks for approvals. 409
    `conflict` (path `name`) when the target already has a live deployment
    of that name, also when two requests race for it."""
    if not policy.can_somewhere(request.user, "deployments.add_deployment"):
        raise NotAllowed("Deploying needs the deployer role or above.")
    repository = _revision(request, body.repository)
    target = _by_id_or_name(
        Target.objects.visible_to(request.user).select_related("environment"), body.target, "target"
    )
    spec = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"name", "repository", "target"})
    deployment = deploying.deployment_create(
        name=body.name, repository=repository, target=target, actor=request.user, **spec
    )
    return Status(201, deployment_json(deployment))


@router.get("deployments/{int:deployment_id}", response=answers({200: DeploymentDetail}, 404), url_name="deployment")
def deployment_get(request: HttpRequest, deployment_id: int):
    """With the spec, health, operations (steps included) and approval state."""
    return deployment_json(_visible(request, deployment_id), detail=True)


@router.delete("deployments/{int:deployment_id}", response=changes({202: Deployment}, 404))
def deployment_delete(request: HttpRequest, deployment_id: int):
    """Stops it at the target and keeps its logs; or a request, where deletes need approval."""
    found = deploying.deployment_delete(deployment=_visible(request, deployment_id), actor=request.user)
    return Status(202, deployment_json(found))


@router.post(
    "deployments/{int:deployment_id}/redeploy",
    response=changes({202: Deployment}, 404),
    url_name="deployment-redeploy",
)
def deployment_redeploy(request: HttpRequest, deployment_id: int, body: Redeploy = None):
    """The same spec again, or the spec with the fields given changed, or
    another revision (`repository`): of the same line, or of another with
    `confirm_other_line`. A changed spec gets a new spec digest and needs
    approval again where the environment asks; what runs keeps running
    until then."""
    found = deploying.deployment_redeploy(
        deployment=_visible(request, deployment_id), actor=request.user, **spec_change(request, body)
    )
    return Status(202, deployment_json(found))


@router.post(
    "deployments/{int:deployment_id}/promote",
    response=changes({201: Deployment, 202: Deployment}, 404),
    url_name="deployment-promote",
)
def deployment_promote(request: HttpRequest, deployment_id: int, body: Promotion):
    """Exactly what this deployment runs (revision and spec fields; resources
    left at its target's defaults take the destination's) goes to the
    environment named: 202 with the deployment of the same line there, now
    updating, or 201 with a new one; either may wait for that environment's
    approvals. 409 `ambiguous` with `choices` when several deployments (or
    targets) could take it: ask again naming one in `deployment` (or
    `target`); 409 `conflict` when the name is taken by another line's
    deployment (give `name`); 409 `not_healthy` unless `force`; 400
    `no_target` when the environment has no target that can run it."""
    source = _visible(request, deployment_id)
    environment = _by_id_or_name(Environment.objects.visible_to(request.user), body.environment, "environment")
    target = (
        _by_id_or_name(Target.objects.visible_to(request.user).select_related("environment"), body.target, "target")
        if body.target is not None
        else None
    )
    into = None
    if body.deployment is not None:
        into = _by_id_or_name(DeploymentRow.objects.visible_to(request.user), body.deployment, "deployment")
    promoted = promotion.deployment_promote(
        deployment=source,
        environment=environment,
        actor=request.user,
        target=target,
        into=into,
        name=body.name,
        force=body.force,
    )
    return Status(201 if promoted.created else 202, deployment_json(promoted.deployment))


def _pending_request(deployment: DeploymentRow) -> DeployRequest:
    request = deployment.requests.filter(status=DeployRequest.Status.PENDING).first()
    if request is None:
        raise WrongState("Nothing about this deployment is waiting for approval.")
    return request


def _decide(request, deployment_id: int, service, **extra) -> dict:
    """Approve, reject or cancel the deployment's pending request."""
    service(deploy_request=_pending_request(_visible(request, deployment_id)), actor=request.user, **extra)
    return deployment_json(_visible(request, deployment_id), detail=True)


_DECISION = changes({200: DeploymentDetail}, 404)


@router.post("deployments/{int:deployment_id}/approve", response=_DECISION, url_name="deployment-approve")
def deployment_approve(request: HttpRequest, deployment_id: int, body: Comment = None):
    """By someone allowed who is not the requester; 409 when nothing is
    pending, you decided already, or the request expired."""
    return _decide(request, deployment_id, deciding.deployment_approve, comment=body.comment if body else "")


@router.post("deployments/{int:deployment_id}/reject", response=_DECISION, url_name="deployment-reject")
def deployment_reject(request: HttpRequest, deployment_id: int, body: Comment = None):
    """`comment` is required: the requester reads it."""
    return _decide(request, deployment_id, deciding.deployment_reject, comment=body.comment if body else "")


@router.post("deployments/{int:deployment_id}/cancel", response=_DECISION, url_name="deployment-cancel")
def deployment_cancel(request: HttpRequest, deployment_id: int):
    """The requester withdraws the pending request."""
    return _decide(request, deployment_id, deciding.deployment_request_cancel)


@router.get("deployments/{int:deployment_id}/logs", response=answers({200: Logs}, 404), url_name="deployment-logs")
def deployment_logs(request: HttpRequest, deployment_id: int, filters: Query[LogQuery]):
    """The server's log and the operations' steps, the last `tail` lines of each."""
    found = _visible(request, deployment_id)
    operations = [
        f"[operation {op.pk} {op.kind}] {step['at']} {step['message']}"
        for op in reversed(list(found.operations.all()))
        for step in op.steps
    ]
    return {"lines": selecting.server_log(found, filters.tail), "operations": operations[-filters.tail :]}


@router.post(
    "deployments/{int:deployment_id}/traffic",
    response=changes({202: Deployment}, 404),
    url_name="deployment-traffic",
)
def deployment_traffic(request: HttpRequest, deployment_id: int, body: Traffic):
    """Shift the endpoint's traffic between its deployments; 400 `unsupported`
    on kinds without a traffic split."""
    found = deploying.deployment_set_traffic(
        deployment=_visible(request, deployment_id), actor=request.user, traffic=body.traffic
    )
    return Status(202, deployment_json(found))


@router.post(
    "deployments/{int:deployment_id}/infer",
    response=changes({200: InferResult}, 404),
    url_name="deployment-infer",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}},
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "Triton's binary extension; needs Inference-Header-Content-Length",
                    }
                },
            },
        },
        "responses": {
            200: {
                "content": {
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "description": "for a binary request: Triton's binary answer",
                        }
                    }
                }
            }
        },
    },
)
def deployment_infer(request: HttpRequest, deployment_id: int):
    """A test inference through the dashboard (audited, latency measured).
    Triton's own error text comes back as a 400."""
    # The bare row: an inference needs neither the operations nor the repository.
    found = (
        DeploymentRow.objects.visible_to(request.user)
        .select_related("target__environment")
        .filter(pk=deployment_id)
        .first()
    )
    if found is None:
        raise NotFound("No such deployment.")
    # The role first: a viewer hears "not allowed" whatever the body holds.
    require(request.user, "deployments.use_console", "Sending test requests", environment=found.target.environment)
    if request.content_type == "application/octet-stream":
        return _infer_binary(request, found)
    body = parse_as(InferRequest, request)
    return console_infer(
        deployment=found,
        actor=request.user,
        model=body.model,
        version=body.version,
        inputs=[spec.model_dump(exclude_unset=True) for spec in body.inputs],
        outputs=[spec.model_dump() for spec in body.outputs or []],
        binary_data=body.binary_data,
        request_id=body.request_id,
        timeout=body.timeout,
        server_timing=body.server_timing,
    )


def _infer_binary(request, deployment):
    """Triton's binary extension in and out, for large tensors: no JSON of
    floats, and the bytes streamed through rather than held in memory."""
    header_length = request.headers.get("Inference-Header-Content-Length", "")
    if not header_length.isdigit():
        raise DomainError("Binary requests need an Inference-Header-Content-Length header.", path="headers")
    check_declared_size(request, MAX_RESPONSE_BYTES)
    total = int(request.META.get("CONTENT_LENGTH") or 0)
    if not 0 < int(header_length) <= total:
        raise DomainError("Inference-Header-Content-Length must lie within the body's length.", path="headers")
    # Read the stream ourselves: request.body would refuse anything over
    # DATA_UPLOAD_MAX_MEMORY_SIZE, which is sized for JSON, not tensors.
    head = request.read(int(header_length))
    answer = console_infer_binary(
        deployment=deployment,
        actor=request.user,
        head=head,
        rest=_body_chunks(request, total - len(head), RELAY_CHUNK),
        rest_length=total - len(head),
    )
    response = StreamingHttpResponse(answer.chunks, content_type="application/octet-stream")
    if answer.content_length is not None:
        response["Content-Length"] = str(answer.content_length)
    if answer.header_length:
        response["Inference-Header-Content-Length"] = answer.header_length
    response["X-Latency-Client-Ms"] = f"{answer.client_ms:.3f}"
    return response


def _body_chunks(request, length: int, size: int):
    """The rest of the request body as it arrives; a body shorter than its
    Content-Length stops the upload rather than send Triton a torn tensor."""
    while length > 0:
        chunk = request.read(min(size, length))
        if not chunk:
            raise DomainError("The request body ended before its Content-Length.")
        length -= len(chunk)
        yield chunk
