"""The console page: a form built from the model's own metadata, results and
snippets rendered in place with htmx."""

import base64
import io
import json
import math

import numpy as np
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from deployments import policy, uploads
from deployments.console import snippet, tensors
from deployments.console.infer import (
    MAX_TIMEOUT,
    PREVIEW_ELEMENTS,
    base_url,
    console_infer,
    console_score,
    model_metadata,
)
from deployments.errors import DomainError
from deployments.models import Deployment, GoldenRequest
from deployments.selectors.deployments import deployment_detail
from deployments.services.rollouts import MAX_GOLDEN_BYTES, golden_request_delete, golden_request_save

# Outputs up to this size get a .npy download link (a data: URL, nothing stored).
NPY_DOWNLOAD_ELEMENTS = 1024 * 1024


def _input_fields(metadata: dict) -> list[dict]:
    fields = []
    for tensor in metadata.get("inputs", []):
        shape = [1 if d < 0 else d for d in tensor["shape"]]
        fields.append({**tensor, "default_shape": json.dumps(shape), "variable": any(d < 0 for d in tensor["shape"])})
    return fields


def _spec_from_post(post, files, field: dict) -> dict:
    name = field["name"]
    mode = post.get(f"mode-{name}", "json")
    try:
        shape = json.loads(post.get(f"shape-{name}", "") or field["default_shape"])
    except json.JSONDecodeError:
        raise DomainError(
            f"input {name}: the shape is a JSON list, e.g. [1, 4].", path=f"inputs.{name}.shape"
        ) from None
    spec = {
        "name": name,
        "datatype": field["datatype"],
        "shape": shape,
        "mode": mode,
        "data": post.get(f"data-{name}", ""),
    }
    if mode in ("npy", "image"):
        spec["file"] = files.get(f"file-{name}")
    if mode == "image":
        spec.update({key: post.get(f"{key}-{name}", "") for key in ("layout", "scaling", "mean", "std")})
    return spec


def _seconds(raw: str | None) -> float:
    try:
        seconds = float(raw or 10)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise DomainError(f"timeout is a number of seconds from 0.1 to {MAX_TIMEOUT:g}.", path="timeout")
    return seconds


def _class_count(post, output: str) -> int:
    raw = post.get(f"class_count-{output}") or "0"
    if not raw.isdigit() or len(raw) > 6:
        raise DomainError(
            f"output {output}: top classes is a whole number, e.g. 5.", path=f"outputs.{output}.class_count"
        )
    return int(raw)


def _preview(output: dict) -> dict:
    data = output["data"] or []
    preview = {**output, "preview": data[:PREVIEW_ELEMENTS], "truncated": len(data) > PREVIEW_ELEMENTS}
    if data and isinstance(data[0], str) and data[0].count(":") >= 2:
        # class_count answers: "score:index[:label]" per class, best first.
        preview["top"] = [dict(zip(("score", "index", "label"), v.split(":", 2), strict=False)) for v in data]
    elif output["datatype"] != "BYTES" and len(data) <= NPY_DOWNLOAD_ELEMENTS:
        buffer = io.BytesIO()
        np.save(buffer, np.array(data, dtype=tensors.numpy_dtype(output["datatype"])).reshape(output["shape"]))
        preview["npy"] = base64.b64encode(buffer.getvalue()).decode()
    return preview


@require_http_methods(["GET", "POST"])
def console(request, deployment_id: int):
    deployment = deployment_detail(request.user, deployment_id)
    if deployment is None:
        raise Http404("No such deployment.")
    if not policy.can(request.user, "deployments.use_console", deployment.target.environment):
        raise PermissionDenied(f"The console in {deployment.target.environment} needs the deployer role there.")
    if deployment.status not in Deployment.RUNNING or not deployment.scoring_uri:
        # Nothing answers: a console would only show a connection error.
        messages.error(
            request, f"{deployment.name} is {deployment.get_status_display().lower()}: nothing answers to test."
        )
        return redirect("deployment", deployment_id=deployment.pk)
    if deployment.mode == "entry_script":
        return _score_console(request, deployment)
    models = list(deployment.repository.models.all()) if deployment.repository else []
    model = request.GET.get("model") or request.POST.get("model") or (models[0].name if models else "")
    version = request.GET.get("version") or request.POST.get("version") or ""
    context = {"deployment": deployment, "models": models, "model": model, "version": version}
    try:
        metadata = model_metadata(deployment, model, version) if model else {}
    except DomainError as exc:
        context["error"] = exc.message
        metadata = {}
    fields = _input_fields(metadata)
    context.update({"metadata": metadata, "fields": fields, "outputs": metadata.get("outputs", [])})
    if request.method == "POST":
        if uploads.refusal(request):
            # An input file past the console's cap: its reading was stopped (deployments/uploads.py).
            context["error"] = uploads.refusal(request)
            return _answer(request, context, status=413)
        try:
            timeout = _seconds(request.POST.get("timeout"))
            inputs = [_spec_from_post(request.POST, request.FILES, field) for field in fields]
            wanted = [
                {"name": o["name"], "class_count": _class_count(request.POST, o["name"])}
                for o in metadata.get("outputs", [])
                if request.POST.get(f"output-{o['name']}")
            ]
            result = console_infer(
                deployment=deployment,
                actor=request.user,
                model=model,
                version=version,
                inputs=inputs,
                outputs=wanted or None,
                binary_data=bool(request.POST.get("binary_data")),
                request_id=request.POST.get("request_id", "")[:64],
                timeout=timeout,
                keep_inputs=True,
                server_timing=True,
            )
        except DomainError as exc:
            context["error"] = exc.message
        else:
            keyed = bool(deployment.key_encrypted)
            base = base_url(deployment)
            context.update(
                {
                    "result": result,
                    "previews": [_preview(o) for o in result["outputs"]],
                    "raw": json.dumps({k: v for k, v in result.items() if k != "sent"}, indent=2)[:20000],
                    "python": snippet.python_snippet(
                        base=base, model=model, version=version, inputs=result["sent"], keyed=keyed
                    ),
                    "curl": snippet.curl_snippet(
                        base=base, model=model, version=version, inputs=result["sent"], keyed=keyed
                    ),
                    "golden": _golden_call(result, model, version),
                    "can_save_golden": policy.can(
                        request.user, "deployments.add_deployment", deployment.target.environment
                    ),
                }
            )
        return _answer(request, context, status=400 if "error" in context else 200)
    return render(request, "deployments/console.html", context)


def _golden_call(result: dict, model: str, version: str) -> str:
    """This call as a golden request (its inputs, and the outputs it got as
    the expected ones), for the one-click save; "" when too large to keep."""
    call = {
        "model": model,
        "version": version,
        "inputs": [
            {"name": s["name"], "datatype": s["datatype"], "shape": s["shape"], "data": s["values"]}
            for s in result["sent"]
        ],
        "expected": [{"name": o["name"], "data": o["data"]} for o in result["outputs"]],
    }
    text = json.dumps(call)
    return text if len(text) <= MAX_GOLDEN_BYTES else ""


@require_POST
def golden_save(request, deployment_id: int):
    deployment = deployment_detail(request.user, deployment_id)
    if deployment is None:
        raise Http404("No such deployment.")
    try:
        call = json.loads(request.POST.get("request") or "")
    except json.JSONDecodeError:
        call = None
    try:
        if not isinstance(call, dict):
            raise DomainError("The call to save is not readable JSON; run it again.", path="request")
        golden = golden_request_save(
            deployment=deployment, actor=request.user, name=request.POST.get("name", ""), request=call
        )
    except DomainError as exc:
        message, ok = exc.message, False
    else:
        message, ok = f"Saved as golden request “{golden.name}”: rollouts of {deployment.name} can check it.", True
    if request.htmx:
        return render(
            request, "deployments/console.html#golden-saved", {"message": message, "ok": ok}, status=200 if ok else 400
        )
    (messages.success if ok else messages.error)(request, message)
    return redirect("deployment-console", deployment_id=deployment.pk)


def _answer(request, context: dict, *, status: int):
    """A POST's result: the fragment htmx swaps in, or the whole page."""
    template = "deployments/console.html#result" if request.htmx else "deployments/console.html"
    return render(request, template, context, status=status)


def _score_console(request, deployment):
    context = {"deployment": deployment, "score": True, "body": request.POST.get("body", '{"a": [1, 2, 3, 4]}')}
    if request.method == "POST":
        try:
            context["answer"] = console_score(
                deployment=deployment,
                actor=request.user,
                body=context["body"],
                timeout=_seconds(request.POST.get("timeout")),
            )
        except DomainError as exc:
            context["error"] = exc.message
        return _answer(request, context, status=400 if "error" in context else 200)
    return render(request, "deployments/console.html", context)


@require_POST
def golden_delete(request, golden_id: int):
    golden = (
        GoldenRequest.objects.filter(pk=golden_id, deployment__in=Deployment.objects.visible_to(request.user))
        .select_related("deployment__target__environment")
        .first()
    )
    if golden is None:
        raise Http404("No such golden request.")
    try:
        golden_request_delete(golden=golden, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Golden request “{golden.name}” removed.")
    return redirect("deployment", deployment_id=golden.deployment_id)
