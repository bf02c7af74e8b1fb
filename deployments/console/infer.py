"""A server-side inference call to a deployment, for the console and the API.

Only the scoring URI of the chosen deployment is ever called (never a URL a
user typed), without following redirects, within a timeout and a response
size cap; the key stays on the server. The request body is built and the
response parsed by tritonclient's own (binary-capable) encoders, the
transport is httpx. Every call is audited as console.inferred: model,
version, shapes, status and latency, never the data.
"""

import atexit
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import tritonclient.http as triton_http
from django.db import transaction

from deployments import crypto
from deployments.audit import audit
from deployments.console import tensors
from deployments.errors import DomainError, WrongState
from deployments.models import Deployment
from deployments.services.permissions import require

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
RELAY_CHUNK = 1024 * 1024
_client: httpx.Client | None = None


def _http() -> httpx.Client:
    """One client per process: building one loads the CA bundle (about 20 ms).
    It keeps no idle connection: the dashboard must never be the client that
    an endpoint's old server waits on when a redeploy or a delete stops it
    (a connection to a local endpoint costs a fraction of a millisecond). No
    compression: httpx asks for gzip by default and Triton then spends ~100 ms
    compressing a 4 MB tensor that does not compress."""
    global _client
    if _client is None:
        _client = httpx.Client(
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Accept-Encoding": "identity"},
        )
        atexit.register(_client.close)
    return _client


MAX_TIMEOUT = 60.0
PREVIEW_ELEMENTS = 64


# Triton model names and version folders. Checked before they go into a URL:
# a name like "../repository/models/x/unload" would otherwise reach another
# Triton endpoint with the deployment's key.
# fullmatch, not match with `$`: `$` lets a trailing newline through.
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_VERSION = re.compile(r"[0-9]{1,18}")


def model_path(model: str, version: str = "", suffix: str = "") -> str:
    """/v2/models/<model>[/versions/<version>]<suffix>, refusing anything that is not a plain name."""
    if not isinstance(model, str) or not _MODEL_NAME.fullmatch(model):
        raise DomainError("model is a Triton model name (letters, digits, '_', '.', '-').", path="model")
    version = str(version or "")
    if version and not _VERSION.fullmatch(version):
        raise DomainError("version is a whole number, e.g. 1.", path="version")
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + suffix


def base_url(deployment: Deployment) -> str:
    return deployment.scoring_uri.rstrip("/").removesuffix("/score")


def _headers(deployment: Deployment) -> dict[str, str]:
    key = crypto.decrypt(deployment.key_encrypted) if deployment.key_encrypted else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def _check(deployment: Deployment, actor) -> None:
    require(actor, "deployments.use_console", "Sending test requests", environment=deployment.target.environment)
    if deployment.status not in Deployment.RUNNING or not deployment.scoring_uri:
        raise WrongState(f"{deployment.name} is {deployment.get_status_display().lower()}: nothing answers yet.")
    if deployment.mode == Deployment.Mode.ENTRY_SCRIPT:
        raise WrongState("This deployment serves /score (entry script): use its JSON console.")


def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise DomainError(
                f"The answer is larger than {MAX_RESPONSE_BYTES // 1024 // 1024} MB; ask for fewer outputs."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def model_metadata(deployment: Deployment, model: str, version: str = "") -> dict:
    """Triton's metadata for the model (inputs, outputs, versions), from the server itself."""
    path = model_path(model, version)
    try:
        answer = _http().get(base_url(deployment) + path, headers=_headers(deployment), timeout=5)
    except httpx.HTTPError as exc:
        raise WrongState(f"The deployment did not answer: {type(exc).__name__}.") from None
    if answer.status_code != 200:
        raise DomainError(_triton_error(answer.content, answer.status_code), code="triton_error", path="model")
    return answer.json()


def _triton_error(body: bytes, status: int) -> str:
    try:
        return httpx.Response(200, content=body).json().get("error") or f"HTTP {status}"
    except ValueError:
        return body[:300].decode("utf-8", "replace") or f"HTTP {status}"


def _build_input(spec: dict) -> tuple[triton_http.InferInput, np.ndarray, bool]:
    name, datatype = spec.get("name"), spec.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise DomainError("Each input needs a name and a datatype.", path="inputs")
    mode = spec.get("mode", "json")
    if mode == "random":
        array = tensors.random(name, datatype, spec.get("shape"), seed=spec.get("seed"))
    elif mode == "text":
        array = tensors.from_text(name, spec.get("shape"), spec.get("data") or "")
    elif mode == "npy":
        array = tensors.from_npy(name, datatype, spec.get("file"))
    elif mode == "image":
        array = tensors.from_image(
            name,
            datatype,
            spec.get("shape"),
            spec.get("file"),
            layout=spec.get("layout", "NCHW"),
            scaling=spec.get("scaling", "0-1"),
            mean=spec.get("mean", ""),
            std=spec.get("std", ""),
        )
    else:
        array = tensors.from_json(name, datatype, spec.get("shape"), spec.get("data"))
    tensor = triton_http.InferInput(name, list(array.shape), datatype)
    binary = bool(spec.get("binary_data", True))
    try:
        tensor.set_data_from_numpy(array, binary_data=binary)
    except Exception as exc:  # tritonclient raises plain exceptions for dtype mismatches
        raise DomainError(f"input {name}: {exc}", path=f"inputs.{name}") from None
    return tensor, array, binary


def console_infer(
    *,
    deployment: Deployment,
    actor,
    model: str,
    inputs: list[dict],
    version: str = "",
    outputs: list[dict] | None = None,
    binary_data: bool = True,
    request_id: str = "",
    timeout: float = 10.0,
    keep_inputs: bool = False,
    server_timing: bool = False,
) -> dict:
    _check(deployment, actor)
    model_path(model, version)
    if not isinstance(inputs, list) or not inputs:
        raise DomainError("Send at least one input.", path="inputs")
    timeout = min(max(float(timeout or 10.0), 0.1), MAX_TIMEOUT)
    tensors.check_request_size(
        {
            spec["name"]: (spec["datatype"], spec["shape"])
            for spec in inputs
            if isinstance(spec.get("shape"), list) and isinstance(spec.get("datatype"), str)
        }
    )
    built = [_build_input({**spec, "binary_data": spec.get("binary_data", binary_data)}) for spec in inputs]
    requested = [
        triton_http.InferRequestedOutput(o["name"], binary_data=binary_data, class_count=int(o.get("class_count") or 0))
        for o in (outputs or [])
    ]
    body, json_size = triton_http.InferenceServerClient.generate_request_body(
        [tensor for tensor, _, _ in built], outputs=requested or None, request_id=request_id
    )
    headers = _headers(deployment)
    if json_size is not None:
        headers.update({"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(json_size)})
    else:
        headers["Content-Type"] = "application/json"
    shapes = {tensor.name(): list(array.shape) for tensor, array, _ in built}
    call = _Call(deployment, actor, model, version, shapes)
    before = _success_stats(deployment, model, version) if server_timing else None
    payload, header_length, client_ms = call.post(body, headers, timeout)
    server_ms = _server_ms(before, _success_stats(deployment, model, version)) if server_timing else None
    result = triton_http.InferenceServerClient.parse_response_body(payload, header_length=header_length)
    answer = result.get_response()
    outputs_json = []
    for output in answer.get("outputs", []):
        array = result.as_numpy(output["name"])
        outputs_json.append(
            {
                "name": output["name"],
                "datatype": output["datatype"],
                "shape": list(array.shape) if array is not None else output.get("shape", []),
                "data": _jsonable(array),
            }
        )
    call.version = answer.get("model_version", version)
    call.done(client_ms)
    result = {
        "model_name": answer.get("model_name", model),
        "model_version": answer.get("model_version", version),
        "outputs": outputs_json,
        "latency_ms": {"client": round(client_ms, 3), "server": server_ms},
    }
    if keep_inputs:
        # For the page's snippets; the API does not echo what it was sent.
        result["sent"] = [
            {
                "name": tensor.name(),
                "datatype": tensor.datatype(),
                "shape": list(array.shape),
                "values": _jsonable(array),
            }
            for tensor, array, _ in built
        ]
    return result


def _success_stats(deployment: Deployment, model: str, version: str) -> tuple[int, int] | None:
    """(successful requests, their total ns) from Triton's statistics, or None."""
    path = model_path(model, version, "/stats")
    try:
        answer = _http().get(base_url(deployment) + path, headers=_headers(deployment), timeout=2)
        stats = answer.json()["model_stats"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    count = sum(int(s["inference_stats"]["success"]["count"]) for s in stats)
    total = sum(int(s["inference_stats"]["success"]["ns"]) for s in stats)
    return count, total


def _server_ms(before, after) -> float | None:
    """Time Triton spent on this request (queue + compute), from the statistics' delta."""
    if not before or not after or after[0] - before[0] != 1:
        return None  # unknown, or other requests ran meanwhile
    return round((after[1] - before[1]) / 1e6, 3)


class _Call:
    """One inference POST to the deployment: errors become domain errors with
    Triton's words, and every outcome is audited."""

    def __init__(self, deployment, actor, model: str, version: str, shapes: dict):
        self.deployment, self.actor, self.model, self.version, self.shapes = deployment, actor, model, version, shapes

    def open(self, content, headers: dict, timeout: float) -> tuple[httpx.Response, float]:
        """Sends the request and returns the answer with its body still unread
        (the caller closes it), and the time to its headers. Anything but a
        200 is read, audited and raised with Triton's own words."""
        url = base_url(self.deployment) + model_path(self.model, self.version, "/infer")
        timeout = min(timeout, MAX_TIMEOUT)
        started = time.perf_counter()
        client = _http()
        try:
            response = client.send(
                client.build_request("POST", url, content=content, headers=headers, timeout=timeout), stream=True
            )
        except httpx.TimeoutException:
            self._audit("timeout", None)
            raise DomainError(f"No answer within {timeout:g} s.", code="timeout") from None
        except httpx.HTTPError as exc:
            self._audit("unreachable", None)
            raise WrongState(f"The deployment did not answer: {type(exc).__name__}.") from None
        client_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            try:
                payload = _read_capped(response)
            except httpx.HTTPError:
                payload = b""
            finally:
                response.close()
            self._audit(f"error {response.status_code}", client_ms)
            raise DomainError(_triton_error(payload, response.status_code), code="triton_error")
        return response, client_ms

    def post(self, content: bytes, headers: dict, timeout: float) -> tuple[bytes, int | None, float]:
        started = time.perf_counter()
        response, _ = self.open(content, headers, timeout)
        try:
            payload = _read_capped(response)
        except httpx.HTTPError as exc:
            self._audit("unreachable", None)
            raise WrongState(f"The deployment stopped answering: {type(exc).__name__}.") from None
        finally:
            response.close()
        header_length = response.headers.get("Inference-Header-Content-Length")
        return payload, int(header_length) if header_length else None, (time.perf_counter() - started) * 1000

    def done(self, client_ms: float) -> None:
        self._audit("ok", client_ms)

    def _audit(self, status: str, latency: float | None) -> None:
        _audit(self.deployment, self.actor, self.model, self.version, self.shapes, status, latency)


def _jsonable(array):
    if array is None:
        return None
    if array.dtype == np.object_:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.reshape(-1)]
    return array.reshape(-1).tolist()


def _audit(deployment, actor, model, version, shapes, status, latency) -> None:
    with transaction.atomic():
        audit(
            action="console.inferred",
            actor=actor,
            obj=deployment,
            details={
                "model": model,
                "version": str(version or ""),
                "shapes": shapes,
                "status": status,
                "latency_ms": round(latency, 2) if latency is not None else None,
            },
        )


@dataclass
class StreamedAnswer:
    """Triton's answer to a binary request, its body not read yet: the API
    hands the chunks straight to its client."""

    header_length: str | None
    content_length: int | None
    chunks: Iterator[bytes]
    client_ms: float


def console_infer_binary(
    *, deployment: Deployment, actor, head: bytes, rest: Iterator[bytes], rest_length: int, timeout: float = 30.0
) -> StreamedAnswer:
    """Triton's binary tensor extension, passed through without buffering:
    `head` is the JSON request header (it names the model and version and
    describes the tensors); the tensors' `rest_length` bytes follow from
    `rest` and go to Triton as they arrive, and Triton's answer comes back
    the same way, so a large tensor crosses the dashboard as a stream rather
    than as two whole copies."""
    _check(deployment, actor)
    try:
        header = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        raise DomainError("The first Inference-Header-Content-Length bytes must be the JSON request header.") from None
    if not isinstance(header, dict) or not isinstance(header.get("model"), str) or not header.get("inputs"):
        raise DomainError("The JSON header needs a model and inputs.", path="model")
    model, version = header.pop("model"), str(header.pop("version", "") or "")
    model_path(model, version)
    described = {
        str(t.get("name")): (t.get("datatype"), t.get("shape")) for t in header["inputs"] if isinstance(t, dict)
    }
    tensors.check_request_size(described)
    shapes = {name: shape for name, (_, shape) in described.items()}
    json_part = json.dumps(header).encode()
    headers = {
        **_headers(deployment),
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(json_part)),
        # A known length keeps the upload a plain body, not chunked encoding.
        "Content-Length": str(len(json_part) + rest_length),
    }
    call = _Call(deployment, actor, model, version, shapes)
    response, client_ms = call.open(itertools.chain((json_part,), rest), headers, timeout)
    length = response.headers.get("Content-Length")
    if length and int(length) > MAX_RESPONSE_BYTES:
        response.close()
        call._audit("answer too large", client_ms)
        raise DomainError(f"The answer is larger than {MAX_RESPONSE_BYTES // 1024 // 1024} MB; ask for fewer outputs.")
    call.done(client_ms)
    return StreamedAnswer(
        header_length=response.headers.get("Inference-Header-Content-Length"),
        content_length=int(length) if length else None,
        chunks=_relay(response),
        client_ms=client_ms,
    )


def _relay(response: httpx.Response) -> Iterator[bytes]:
    """The answer's bytes as they arrive, at most MAX_RESPONSE_BYTES of them
    (Triton states its length, so the cap above normally refuses first)."""
    size = 0
    try:
        for chunk in response.iter_raw(RELAY_CHUNK):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                return
            yield chunk
    finally:
        response.close()


def console_score(*, deployment: Deployment, actor, body: str, timeout: float = 10.0) -> dict:
    """Entry-script deployments: a JSON body to their /score, the answer back."""
    require(actor, "deployments.use_console", "Sending test requests", environment=deployment.target.environment)
    if deployment.status not in Deployment.RUNNING or not deployment.scoring_uri.rstrip("/").endswith("/score"):
        raise WrongState("Only a running entry-script deployment answers /score.")
    try:
        json.loads(body)
    except ValueError as exc:
        raise DomainError(f"The body is not valid JSON ({exc}).", path="body") from None
    headers = {**_headers(deployment), "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        with _http().stream(
            "POST",
            deployment.scoring_uri,
            content=body.encode(),
            headers=headers,
            timeout=min(max(timeout, 0.1), MAX_TIMEOUT),
        ) as response:
            payload = _read_capped(response)
    except httpx.HTTPError as exc:
        _audit(deployment, actor, "(score)", "", {}, "unreachable", None)
        raise WrongState(f"The deployment did not answer: {type(exc).__name__}.") from None
    client_ms = (time.perf_counter() - started) * 1000
    _audit(deployment, actor, "(score)", "", {}, f"HTTP {response.status_code}", client_ms)
    return {"status": response.status_code, "body": payload.decode("utf-8", "replace"), "latency_ms": client_ms}
