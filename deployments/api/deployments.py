from django.http import JsonResponse
from django.urls import reverse

from deployments import policy
from deployments.api.auth import api_view
from deployments.api.responses import api_error, json_body
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.models import Deployment, DeployRequest, ModelRepository, Target
from deployments.selectors.deployments import deployment_detail, deployment_list, server_log
from deployments.serializers import deployment_json
from deployments.services.approvals import deployment_approve, deployment_reject, deployment_request_cancel
from deployments.services.deployments import (
    deployment_create,
    deployment_delete,
    deployment_redeploy,
    deployment_set_traffic,
)

PAGE_SIZE = 50
_CREATE_FIELDS = {
    "name",
    "repository",
    "target",
    "mode",
    "entry_script",
    "pip_packages",
    "worker_count",
    "resources",
    "auth_enabled",
}


def _by_id_or_name(queryset, value, label: str):
    """Objects are named by id or by name; either way only visible ones are found."""
    if isinstance(value, bool) or value in (None, ""):
        raise DomainError(f"'{label}' is required (an id or a name).", path=label)
    found = queryset.filter(pk=value).first() if isinstance(value, int) else queryset.filter(name=value).first()
    if found is None:
        raise DomainError(f"No {label} {value!r} that you may use.", code="not_found", path=label)
    return found


@api_view("GET", "POST")
def deployments(request):
    if request.method == "GET":
        if not policy.can_somewhere(request.user, "deployments.view_deployment"):
            raise NotAllowed("Seeing deployments needs the viewer role or above.")
        filters = {key: request.GET.get(key, "") for key in ("target", "status", "environment")}
        if filters["status"] and filters["status"] not in Deployment.Status.values:
            raise DomainError(f"status is one of {', '.join(Deployment.Status.values)}.", path="status")
        after = request.GET.get("after", "")
        rows = deployment_list(request.user, **filters).order_by("-id")
        if after.isdigit():
            rows = rows.filter(pk__lt=int(after))
        page = list(rows[: PAGE_SIZE + 1])
        next_url = None
        if len(page) > PAGE_SIZE:
            query = request.GET.copy()
            query["after"] = str(page[PAGE_SIZE - 1].pk)
            next_url = request.build_absolute_uri(f"{reverse('api:deployments')}?{query.urlencode()}")
        return JsonResponse({"results": [deployment_json(d) for d in page[:PAGE_SIZE]], "next": next_url})

    if not policy.can_somewhere(request.user, "deployments.add_deployment"):
        raise NotAllowed("Deploying needs the deployer role or above.")
    body = json_body(request)
    unknown = set(body) - _CREATE_FIELDS
    if unknown:
        raise DomainError(f"Unknown fields: {', '.join(sorted(unknown))}.", path=sorted(unknown)[0])
    repository = _by_id_or_name(ModelRepository.objects.visible_to(request.user), body.get("repository"), "repository")
    target = _by_id_or_name(
        Target.objects.visible_to(request.user).select_related("environment"), body.get("target"), "target"
    )
    deployment = deployment_create(
        name=body.get("name", ""),
        repository=repository,
        target=target,
        actor=request.user,
        mode=body.get("mode", Deployment.Mode.TRITON),
        entry_script=body.get("entry_script", ""),
        pip_packages=body.get("pip_packages"),
        worker_count=body.get("worker_count", 1),
        resources=body.get("resources"),
        auth_enabled=body.get("auth_enabled", True),
    )
    return JsonResponse(deployment_json(deployment), status=201)


def _visible(request, deployment_id: int) -> Deployment | None:
    return deployment_detail(request.user, deployment_id)


@api_view("GET", "DELETE")
def deployment(request, deployment_id: int):
    found = _visible(request, deployment_id)
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    if request.method == "DELETE":
        found = deployment_delete(deployment=found, actor=request.user)
        return JsonResponse(deployment_json(found), status=202)
    return JsonResponse(deployment_json(found, detail=True))


@api_view("POST")
def redeploy(request, deployment_id: int):
    found = _visible(request, deployment_id)
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    changes = json_body(request) if request.content_type == "application/json" and request.body else {}
    found = deployment_redeploy(deployment=found, actor=request.user, changes=changes)
    return JsonResponse(deployment_json(found), status=202)


def _pending_request(deployment: Deployment) -> DeployRequest:
    request = deployment.requests.filter(status=DeployRequest.Status.PENDING).first()
    if request is None:
        raise WrongState("Nothing about this deployment is waiting for approval.")
    return request


def _decide(request, deployment_id: int, service, *, with_comment: bool = True):
    """Approve, reject or cancel the deployment's pending request."""
    found = _visible(request, deployment_id)
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    extra = {}
    if with_comment:
        extra["comment"] = str((json_body(request) if request.body else {}).get("comment") or "")
    service(deploy_request=_pending_request(found), actor=request.user, **extra)
    return JsonResponse(deployment_json(_visible(request, deployment_id), detail=True))


@api_view("POST")
def approve(request, deployment_id: int):
    return _decide(request, deployment_id, deployment_approve)


@api_view("POST")
def reject(request, deployment_id: int):
    return _decide(request, deployment_id, deployment_reject)


@api_view("POST")
def cancel(request, deployment_id: int):
    return _decide(request, deployment_id, deployment_request_cancel, with_comment=False)


@api_view("GET")
def logs(request, deployment_id: int):
    found = _visible(request, deployment_id)
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    try:
        tail = max(1, min(int(request.GET.get("tail", 200)), 5000))
    except ValueError:
        raise DomainError("tail is a whole number.", path="tail") from None
    lines = server_log(found, tail)
    operations = [
        f"[operation {op.pk} {op.kind}] {step['at']} {step['message']}"
        for op in reversed(list(found.operations.all()))
        for step in op.steps
    ]
    return JsonResponse({"lines": lines, "operations": operations[-tail:]})


@api_view("POST")
def traffic(request, deployment_id: int):
    found = _visible(request, deployment_id)
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    body = json_body(request)
    found = deployment_set_traffic(deployment=found, actor=request.user, traffic=body.get("traffic"))
    return JsonResponse(deployment_json(found), status=202)


@api_view("POST")
def infer(request, deployment_id: int):
    from deployments.console.infer import console_infer

    # The bare row: an inference needs neither the operations nor the repository.
    found = Deployment.objects.visible_to(request.user).filter(pk=deployment_id).first()
    if found is None:
        return api_error(404, "not_found", "No such deployment.")
    if request.content_type == "application/octet-stream":
        return _infer_binary(request, found)
    body = json_body(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DomainError("model names the model to call.", path="model")
    result = console_infer(
        deployment=found,
        actor=request.user,
        model=model,
        version=str(body.get("version") or ""),
        inputs=body.get("inputs"),
        outputs=body.get("outputs"),
        binary_data=bool(body.get("binary_data", True)),
        request_id=str(body.get("request_id") or ""),
        timeout=body.get("timeout") or 10.0,
        server_timing=bool(body.get("server_timing", False)),
    )
    return JsonResponse(result)


def _infer_binary(request, deployment):
    """Triton's binary extension in and out, for large tensors: no JSON of
    floats, and the bytes streamed through rather than held in memory."""
    from django.http import StreamingHttpResponse

    from deployments.console.infer import MAX_RESPONSE_BYTES, RELAY_CHUNK, console_infer_binary

    header_length = request.headers.get("Inference-Header-Content-Length", "")
    if not header_length.isdigit():
        raise DomainError("Binary requests need an Inference-Header-Content-Length header.", path="headers")
    total = int(request.META.get("CONTENT_LENGTH") or 0)
    if total > MAX_RESPONSE_BYTES:
        raise DomainError("The request is larger than the console accepts (64 MB).")
    if not 0 < int(header_length) <= total:
        raise DomainError("Inference-Header-Content-Length must lie within the body's length.", path="headers")
    # Read the stream ourselves: request.body would refuse anything over
    # DATA_UPLOAD_MAX_MEMORY_SIZE, which is sized for forms, not tensors.
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
