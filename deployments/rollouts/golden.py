"""Golden requests: known inputs sent to one deployment of the endpoint (the
azureml-model-deployment header picks it, on Azure as on the local target)
and its answers compared with the expected outputs within a tolerance."""

import httpx
import numpy as np
import tritonclient.http as triton_http

from deployments.console import infer, tensors
from deployments.errors import DomainError

DEPLOYMENT_HEADER = "azureml-model-deployment"
TIMEOUT = 10.0


def _body(request: dict) -> tuple[bytes, dict]:
    built = []
    for spec in request["inputs"]:
        array = tensors.from_json(spec["name"], spec["datatype"], spec["shape"], spec["data"])
        tensor = triton_http.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=False)
        built.append(tensor)
    wanted = [triton_http.InferRequestedOutput(o["name"], binary_data=False) for o in request["expected"]]
    body, _ = triton_http.InferenceServerClient.generate_request_body(built, outputs=wanted)
    return body, {"Content-Type": "application/json"}


def _compare(request: dict, answer: dict) -> str:
    """'' when every expected output matches; else what differs."""
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    tolerance = request["tolerance"]
    for expected in request["expected"]:
        got = outputs.get(expected["name"])
        if got is None:
            return f"no output {expected['name']} in the answer"
        want = np.asarray(expected["data"])
        have = np.asarray(got.get("data"))
        if want.dtype.kind in "OUS" or have.dtype.kind in "OUS":
            if [str(v) for v in want.ravel()] != [str(v) for v in have.ravel()]:
                return f"{expected['name']} is {have.ravel()[:8].tolist()}, expected {want.ravel()[:8].tolist()}"
            continue
        if want.size != have.size:
            return f"{expected['name']} has {have.size} values, expected {want.size}"
        have, want = have.ravel().astype(float), want.ravel().astype(float)
        if not np.allclose(have, want, atol=tolerance["abs"], rtol=tolerance["rel"]):
            worst = int(np.argmax(np.abs(have - want)))
            return (
                f"{expected['name']}[{worst}] is {have[worst]:g}, expected {want[worst]:g} "
                f"(tolerance abs {tolerance['abs']:g}, rel {tolerance['rel']:g})"
            )
    return ""


def run(*, base_url: str, key: str, requests: list[dict], deployment_name: str = "") -> list[dict]:
    """Each golden request's result: {"name", "passed", "detail", "ms", "outputs"}.
    `deployment_name`: the endpoint deployment to reach ("" for an address
    that serves one, such as an SDK v1 webservice)."""
    headers = {DEPLOYMENT_HEADER: deployment_name} if deployment_name else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    results = []
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        for request in requests:
            body, extra = _body(request)
            path = infer.model_path(request["model"], request.get("version", ""), "/infer")
            try:
                response = client.post(base_url + path, content=body, headers={**headers, **extra})
            except httpx.HTTPError as exc:
                results.append(
                    {"name": request["name"], "passed": False, "detail": f"no answer: {exc}", "ms": None, "outputs": {}}
                )
                continue
            ms = round(response.elapsed.total_seconds() * 1000, 3)
            if response.status_code != 200:
                detail = f"HTTP {response.status_code}: {response.text[:200]}"
                results.append({"name": request["name"], "passed": False, "detail": detail, "ms": ms, "outputs": {}})
                continue
            try:
                answer = response.json()
                difference = _compare(request, answer)
            except (ValueError, DomainError) as exc:
                answer, difference = {}, f"unreadable answer: {exc}"
            outputs = {o.get("name"): o.get("data") for o in answer.get("outputs", [])}
            results.append(
                {"name": request["name"], "passed": not difference, "detail": difference, "ms": ms, "outputs": outputs}
            )
    return results
