"""What a load test sends and where: the deployment's own endpoint (its
scoring address, its key, and where the endpoint holds several deployments,
the azureml-model-deployment header naming the one that serves), and one
request body built from the model's metadata as Triton states it.

Inputs: random values (seeded: every run of a test sends the same request),
zeros, or the tensors of a request saved from the console. A batching model
gets a batch of one per request (perf_analyzer's -b 1), so its batches are
Triton's doing; any other variable dimension needs a saved request, which
says what size to send.
"""

import httpx
import numpy as np
import tritonclient.http as triton_http

from deployments import crypto
from deployments.console import infer, tensors
from deployments.errors import DomainError, WrongState
from deployments.loadlab.generator import Target
from deployments.rollouts.golden import DEPLOYMENT_HEADER

SEED = 0


def serving_deployment(deployment) -> str:
    """The endpoint deployment that takes the traffic, where the kind routes
    by the header ("" where the address serves one)."""
    if not deployment.target.descriptor.probe_each_deployment:
        return ""
    traffic = (deployment.control_plane or {}).get("traffic") or {}
    serving = {name: share for name, share in traffic.items() if share}
    return max(sorted(serving), key=lambda name: serving[name]) if serving else ""


def headers_for(deployment, endpoint_deployment: str) -> dict:
    key = crypto.decrypt(deployment.key_encrypted) if deployment.key_encrypted else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if endpoint_deployment:
        headers[DEPLOYMENT_HEADER] = endpoint_deployment
    return headers


def _get(client: httpx.Client, url: str, headers: dict, what: str) -> dict:
    try:
        answer = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise WrongState(f"The endpoint did not answer the {what} request: {type(exc).__name__}.") from None
    if answer.status_code != 200:
        raise WrongState(f"The endpoint refused the {what} request: HTTP {answer.status_code} {answer.text[:200]}")
    try:
        return answer.json()
    except ValueError:
        raise WrongState(f"The endpoint's {what} answer is not JSON.") from None


def _shape(name: str, shape: list, batched: bool) -> list[int]:
    dims = list(shape)
    if batched and dims and dims[0] == -1:
        dims[0] = 1
    if any(d < 0 for d in dims):
        raise DomainError(
            f"Input {name} has a variable dimension ({shape}): save a console request with the shape to send, "
            "and load the model with it.",
            path="inputs",
        )
    return dims


def _tensor(name: str, datatype: str, shape: list[int], how: str) -> np.ndarray:
    if how == "zeros":
        if datatype == "BYTES":
            return np.array([b""] * int(np.prod(shape)), dtype=np.object_).reshape(shape)
        return np.zeros(shape, dtype=tensors.numpy_dtype(datatype))
    return tensors.random(name, datatype, shape, seed=SEED)


def build_body(metadata: dict, config: dict, how: str, saved: list[dict]) -> tuple[bytes, int | None]:
    """The request every client sends, binary tensors as tritonclient writes them."""
    built = []
    if how == "saved":
        for spec in saved:
            array = tensors.from_json(spec["name"], spec["datatype"], spec["shape"], spec.get("data"))
            built.append((spec["name"], spec["datatype"], array))
    else:
        batched = int(config.get("max_batch_size") or 0) > 0
        for spec in metadata.get("inputs", []):
            shape = _shape(spec["name"], spec.get("shape", []), batched)
            built.append((spec["name"], spec["datatype"], _tensor(spec["name"], spec["datatype"], shape, how)))
    if not built:
        raise DomainError("The model declares no inputs to send.", path="model")
    tensors.check_request_size({name: (datatype, list(array.shape)) for name, datatype, array in built})
    inputs = []
    for name, datatype, array in built:
        tensor = triton_http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    # Outputs come back as binary too: the cheapest answer to read.
    outputs = [triton_http.InferRequestedOutput(o["name"], binary_data=True) for o in metadata.get("outputs", [])]
    return triton_http.InferenceServerClient.generate_request_body(inputs, outputs=outputs or None)


def target_for(test) -> tuple[Target, str]:
    """The generator's Target for a LoadTest, and the endpoint deployment it loads."""
    deployment = test.deployment
    if not deployment.scoring_uri:
        raise WrongState(f"{deployment.name} has no address yet.")
    name = serving_deployment(deployment)
    headers = headers_for(deployment, name)
    base = infer.base_url(deployment)
    model_path = infer.model_path(test.model, test.version)
    stats_url = base + model_path + "/stats"
    if deployment.mode == deployment.Mode.ENTRY_SCRIPT:
        target = Target(
            infer_url=deployment.scoring_uri,
            stats_url=stats_url,
            headers=headers,
            body=test.score_body.encode(),
            content_type="application/json",
        )
        return target, name
    return triton_target(base, headers, test.model, test.version, test.inputs, test.saved_inputs), name


def triton_target(base: str, headers: dict, model: str, version: str, how: str, saved: list[dict]) -> Target:
    """A Triton model at `base` (its /v2 API), its request built from what the server says of it."""
    model_path = infer.model_path(model, version)
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        metadata = _get(client, base + model_path, headers, "model metadata")
        config = _get(client, base + model_path + "/config", headers, "model config")
    body, header_length = build_body(metadata, config, how, saved)
    return Target(
        infer_url=base + model_path + "/infer",
        stats_url=base + model_path + "/stats",
        headers=headers,
        body=body,
        content_type="application/octet-stream" if header_length is not None else "application/json",
        header_length=header_length,
    )
