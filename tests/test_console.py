"""The test-inference console's server side, against a real local Triton."""

import json
import shutil

import httpx
import pytest
from django.urls import reverse

from deployments.console.snippet import KEY_PLACEHOLDER
from deployments.models import AuditEvent, Deployment
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import endpoint_headers, local_target, run_pending
from workers.targets.local import adapter as local

pytestmark = [pytest.mark.django_db, pytest.mark.triton]

DTYPES_CONFIG = """backend: "python"
max_batch_size: 0
input [ { name: "HALF" data_type: TYPE_FP16 dims: [ 3 ] }, { name: "FLAGS" data_type: TYPE_BOOL dims: [ 2 ] } ]
output [
  { name: "HALF_TWICE" data_type: TYPE_FP16 dims: [ 3 ] },
  { name: "NOT_FLAGS" data_type: TYPE_BOOL dims: [ 2 ] }
]
"""
IMAGE_CONFIG = """backend: "python"
max_batch_size: 0
input [ { name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, 8, 8 ] } ]
output [ { name: "MEANS" data_type: TYPE_FP32 dims: [ 3 ] } ]
"""
IMAGE_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "MEANS", pb_utils.get_input_tensor_by_name(r, "IMAGE").as_numpy().mean(axis=(1, 2)).astype(np.float32))])
            for r in requests]
"""
DTYPES_MODEL = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            half = pb_utils.get_input_tensor_by_name(request, "HALF").as_numpy()
            flags = pb_utils.get_input_tensor_by_name(request, "FLAGS").as_numpy()
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("HALF_TWICE", (half * 2).astype(np.float16)),
                pb_utils.Tensor("NOT_FLAGS", np.logical_not(flags)),
            ]))
        return out
"""


@pytest.fixture
def deployed(django_user_model, tmp_path):
    """One Triton serving add_sub (FP32), uppercase (BYTES, INT64), the ONNX
    classifier (labels) and a FP16/BOOL model."""
    deployer = make_user(django_user_model, "deployer", "deployer")
    repo = tmp_path / "console-repo"
    shutil.copytree(EXAMPLES / "add_sub" / "add_sub", repo / "add_sub")
    shutil.copytree(EXAMPLES / "string_tools" / "uppercase", repo / "uppercase")
    shutil.copytree(EXAMPLES / "onnx_classifier" / "tiny_classifier", repo / "tiny_classifier")
    (repo / "dtypes" / "1").mkdir(parents=True)
    (repo / "dtypes" / "config.pbtxt").write_text(DTYPES_CONFIG)
    (repo / "dtypes" / "1" / "model.py").write_text(DTYPES_MODEL)
    (repo / "image_stats" / "1").mkdir(parents=True)
    (repo / "image_stats" / "config.pbtxt").write_text(IMAGE_CONFIG)
    (repo / "image_stats" / "1" / "model.py").write_text(IMAGE_MODEL)
    repository = repository_load_example(path=repo, actor=deployer).repository
    assert repository.status == "valid", repository.findings
    deployment = deployment_create(name="console", repository=repository, target=local_target(), actor=deployer)
    try:
        operation = run_pending(deployment)
        assert operation.status == "succeeded", operation.error
        yield deployer, deployment
    finally:
        local.stop_servers(deployment.pk)


def infer(client, header, deployment, body):
    return client.post(
        reverse("api:deployment-infer", args=[deployment.pk]),
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )


def test_the_console_api_speaks_every_datatype_and_reports_trittons_errors(
    client, token_for, deployed, viewer, outsider
):
    deployer, deployment = deployed
    header = token_for(deployer)

    fp32 = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [[10, 20, 30, 40]]},
            ],
        },
    )
    assert fp32.status_code == 200, fp32.content
    body = fp32.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["OUTPUT0"]["data"] == [11, 22, 33, 44]
    assert outputs["OUTPUT0"]["shape"] == [4]
    assert outputs["OUTPUT0"]["datatype"] == "FP32"
    assert body["model_name"] == "add_sub"
    assert body["latency_ms"]["client"] > 0
    assert body["latency_ms"]["server"] is None  # not asked for
    timed = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "server_timing": True,
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
            ],
        },
    ).json()["latency_ms"]
    assert 0 < timed["server"] <= timed["client"]

    text = infer(
        client,
        header,
        deployment,
        {
            "model": "uppercase",
            "binary_data": False,
            "inputs": [
                {"name": "TEXT", "datatype": "BYTES", "shape": [2, 1], "data": [["héllo"], ["triton"]]},
            ],
        },
    ).json()
    outputs = {o["name"]: o for o in text["outputs"]}
    assert outputs["UPPER"]["data"] == ["HÉLLO", "TRITON"]
    assert outputs["LENGTH"] == {"name": "LENGTH", "datatype": "INT64", "shape": [2, 1], "data": [5, 6]}

    typed = infer(
        client,
        header,
        deployment,
        {
            "model": "dtypes",
            "inputs": [
                {"name": "HALF", "datatype": "FP16", "shape": [3], "data": [0.5, 1.5, -2]},
                {"name": "FLAGS", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            ],
        },
    ).json()
    outputs = {o["name"]: o for o in typed["outputs"]}
    assert outputs["HALF_TWICE"]["data"] == [1.0, 3.0, -4.0]
    assert outputs["NOT_FLAGS"]["data"] == [False, True]

    labelled = infer(
        client,
        header,
        deployment,
        {
            "model": "tiny_classifier",
            "inputs": [{"name": "FEATURES", "datatype": "FP32", "shape": [1, 4], "data": [[0, 0, 5, 0]]}],
            "outputs": [{"name": "PROBABILITIES", "class_count": 2}],
        },
    ).json()
    top = labelled["outputs"][0]["data"]
    assert top[0].split(":")[1:] == ["2", "virginica"]

    random = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "mode": "random", "seed": 1},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "mode": "random", "seed": 2},
            ],
        },
    )
    assert random.status_code == 200

    wrong_shape = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
                {"name": "INPUT1", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
            ],
        },
    )
    assert wrong_shape.status_code == 400
    assert "shape" in wrong_shape.json()["errors"][0]["message"]  # Triton's own words
    wrong_type = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "inputs": [
                {"name": "INPUT0", "datatype": "INT32", "shape": [4], "data": [1, 2, 3, 4]},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
            ],
        },
    )
    assert wrong_type.status_code == 400
    assert (
        "INT32" in wrong_type.json()["errors"][0]["message"] or "data-type" in wrong_type.json()["errors"][0]["message"]
    )
    too_few = infer(
        client,
        header,
        deployment,
        {
            "model": "add_sub",
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2]},
            ],
        },
    )
    assert too_few.json()["errors"][0]["message"] == "input INPUT0: 2 values for shape [4], which needs 4."

    events = AuditEvent.objects.filter(action="console.inferred", object_id=str(deployment.pk)).order_by("seq")
    assert events.count() == 8  # every call that reached the server, errors included
    first = events.first().details
    assert first["shapes"] == {"INPUT0": [4], "INPUT1": [4]}
    assert first["status"] == "ok"
    # No tensor values (the answer was 11, 22, 33, 44); the latency is a
    # number too, and may well read 114.7, so it is left out of the search.
    assert "11" not in str({key: value for key, value in first.items() if key != "latency_ms"})
    assert "data" not in first

    assert infer(client, token_for(viewer), deployment, {"model": "add_sub", "inputs": []}).status_code == 403
    assert infer(client, token_for(outsider), deployment, {"model": "add_sub", "inputs": []}).status_code == 404


def test_the_console_refuses_deployments_that_are_not_running(client, token_for, django_user_model):
    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="queued", repository=repository, target=local_target(), actor=deployer)
    assert deployment.status == Deployment.Status.QUEUED
    response = infer(
        client,
        token_for(deployer),
        deployment,
        {"model": "add_sub", "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]},
    )
    assert response.status_code == 409
    assert "nothing answers yet" in response.json()["errors"][0]["message"]


def test_the_console_page_infers_in_place_and_its_snippet_reproduces_the_call(client, deployed, capsys):
    import contextlib
    import io
    import re
    from html import unescape

    deployer, deployment = deployed
    client.force_login(deployer)
    url = reverse("deployment-console", args=[deployment.pk]) + "?model=add_sub"
    page = client.get(url).content.decode()
    assert 'name="data-INPUT0"' in page
    assert "FP32 shape [4]" in page
    answer = client.post(
        url,
        {
            "model": "add_sub",
            "mode-INPUT0": "json",
            "shape-INPUT0": "[4]",
            "data-INPUT0": "[1, 2, 3, 4]",
            "mode-INPUT1": "random",
            "shape-INPUT1": "[4]",
            "binary_data": "1",
        },
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200, answer.content.decode()[:500]
    fragment = answer.content.decode()
    assert fragment.lstrip().startswith('<section id="result">')
    python = unescape(
        re.search(r"<summary>Python \(tritonclient.http\)</summary><pre><code>(.*?)</code>", fragment, re.S).group(1)
    )
    # The endpoint wants a key: the snippet shows where it goes, never the key itself.
    key = endpoint_headers(deployment)["Authorization"].removeprefix("Bearer ")
    assert KEY_PLACEHOLDER in python
    assert key not in python
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python.replace(KEY_PLACEHOLDER, key), "snippet.py", "exec"), {})  # noqa: S102 - the generated snippet, run as a user would
    snippet_outputs = eval(printed.getvalue())  # noqa: S307 - the snippet prints a dict of lists
    shown = re.search(
        r"<code>OUTPUT0</code></td><td>FP32</td><td>\[4\]</td>\s*<td class=\"mono\">\s*([^<]*?)\s*<br>", fragment
    )
    assert [float(v) for v in shown.group(1).split(",")] == pytest.approx(snippet_outputs["OUTPUT0"])
    assert 'download="OUTPUT0.npy"' in fragment
    bad = client.post(
        url,
        {
            "model": "add_sub",
            "mode-INPUT0": "json",
            "shape-INPUT0": "[4]",
            "data-INPUT0": "[1, 2]",
            "mode-INPUT1": "random",
            "shape-INPUT1": "[4]",
        },
        HTTP_HX_REQUEST="true",
    )
    assert bad.status_code == 400
    assert "2 values for shape [4]" in bad.content.decode()


def test_the_console_page_takes_npy_files_and_shows_top_classes(client, deployed):
    import io

    import numpy as np
    from django.core.files.uploadedfile import SimpleUploadedFile

    deployer, deployment = deployed
    client.force_login(deployer)
    buffer = io.BytesIO()
    np.save(buffer, np.array([[0.0, 0.0, 5.0, 0.0]], dtype=np.float32))
    url = reverse("deployment-console", args=[deployment.pk]) + "?model=tiny_classifier"
    answer = client.post(
        url,
        {
            "model": "tiny_classifier",
            "mode-FEATURES": "npy",
            "shape-FEATURES": "[1, 4]",
            "file-FEATURES": SimpleUploadedFile("features.npy", buffer.getvalue()),
            "output-PROBABILITIES": "1",
            "class_count-PROBABILITIES": "2",
        },
        HTTP_HX_REQUEST="true",
    )
    fragment = answer.content.decode()
    assert answer.status_code == 200, fragment[:400]
    assert '<ol class="top-k"><li><strong>virginica</strong>' in fragment
    wrong = io.BytesIO()
    np.save(wrong, np.array([[1, 2, 3, 4]], dtype=np.int64))
    refused = client.post(
        url,
        {
            "model": "tiny_classifier",
            "mode-FEATURES": "npy",
            "shape-FEATURES": "[1, 4]",
            "file-FEATURES": SimpleUploadedFile("w.npy", wrong.getvalue()),
        },
        HTTP_HX_REQUEST="true",
    )
    assert refused.status_code == 400
    assert "the file holds int64, the model wants FP32" in refused.content.decode()


def test_an_image_becomes_a_scaled_normalised_nchw_tensor(client, deployed):
    import io
    import re

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    deployer, deployment = deployed
    client.force_login(deployer)
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 0, 128)).save(png, format="PNG")
    url = reverse("deployment-console", args=[deployment.pk]) + "?model=image_stats"

    def send(**extra):
        form = {
            "model": "image_stats",
            "mode-IMAGE": "image",
            "shape-IMAGE": "[3, 8, 8]",
            "file-IMAGE": SimpleUploadedFile("red.png", png.getvalue()),
            "layout-IMAGE": "NCHW",
            "scaling-IMAGE": "0-1",
            **extra,
        }
        return client.post(url, form, HTTP_HX_REQUEST="true")

    fragment = send().content.decode()
    means = re.search(
        r"<code>MEANS</code></td><td>FP32</td><td>\[3\]</td>\s*<td class=\"mono\">\s*([^<]*?)\s*<br>", fragment
    )
    assert [float(v) for v in means.group(1).split(",")] == pytest.approx([1.0, 0.0, 128 / 255], abs=1e-4)
    fragment = send(**{"mean-IMAGE": "0.5", "std-IMAGE": "0.5"}).content.decode()
    means = re.search(
        r"<code>MEANS</code></td><td>FP32</td><td>\[3\]</td>\s*<td class=\"mono\">\s*([^<]*?)\s*<br>", fragment
    )
    assert [float(v) for v in means.group(1).split(",")] == pytest.approx(
        [1.0, -1.0, (128 / 255 - 0.5) / 0.5], abs=1e-4
    )
    refused = send(**{"shape-IMAGE": "[4, 8, 8]"})
    assert refused.status_code == 400
    assert "4 channels" in refused.content.decode()


def test_binary_tensors_stream_through_the_api_both_ways(client, token_for, deployed, monkeypatch):
    """Triton's binary extension passed through in small pieces: the request
    goes to Triton as it is read and the answer comes back as it arrives."""
    import numpy as np
    import tritonclient.http as triton_http

    from deployments.console import infer as console

    monkeypatch.setattr(console, "RELAY_CHUNK", 7)  # many pieces each way, not one buffer
    deployer, deployment = deployed
    first, second = np.array([1, 2, 3, 4], dtype=np.float32), np.array([10, 20, 30, 40], dtype=np.float32)

    def binary_request(shape):
        tensors = []
        for name, values in (("INPUT0", first), ("INPUT1", second)):
            tensor = triton_http.InferInput(name, shape, "FP32")
            tensor.set_data_from_numpy(values.reshape(shape), binary_data=True)
            tensors.append(tensor)
        raw, json_size = triton_http.InferenceServerClient.generate_request_body(
            tensors, outputs=[triton_http.InferRequestedOutput("OUTPUT0", binary_data=True)]
        )
        head = json.dumps({**json.loads(raw[:json_size]), "model": "add_sub"}).encode()
        return head + raw[json_size:], len(head)

    def send(body, header_length):
        return client.post(
            reverse("api:deployment-infer", args=[deployment.pk]),
            body,
            content_type="application/octet-stream",
            HTTP_AUTHORIZATION=token_for(deployer),
            HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(header_length),
        )

    body, header_length = binary_request([4])
    answer = send(body, header_length)
    assert answer.status_code == 200
    content = b"".join(answer.streaming_content)
    assert int(answer["Content-Length"]) == len(content)
    result = triton_http.InferenceServerClient.parse_response_body(
        content, header_length=int(answer["Inference-Header-Content-Length"])
    )
    assert result.as_numpy("OUTPUT0").tolist() == [11, 22, 33, 44]
    assert float(answer["X-Latency-Client-Ms"]) > 0

    wrong_shape = send(*binary_request([2, 2]))
    assert wrong_shape.status_code == 400
    assert "Expected [4], got [2,2]" in wrong_shape.json()["errors"][0]["message"]

    # A model "name" that climbs out of /v2/models/ never reaches Triton.
    escape = infer(
        client,
        token_for(deployer),
        deployment,
        {
            "model": "../repository/models/add_sub/unload?x=",
            "inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}],
        },
    )
    assert escape.status_code == 400
    assert escape.json()["errors"][0]["path"] == "model"
    ready = httpx.get(f"{deployment.scoring_uri}/v2/models/add_sub/ready", headers=endpoint_headers(deployment))
    assert ready.status_code == 200

    beyond = send(body, len(body) + 1)
    assert beyond.status_code == 400
    assert "Inference-Header-Content-Length" in beyond.json()["errors"][0]["message"]
    not_json = send(b"{nope" + body, 5 + header_length)
    assert not_json.status_code == 400
    assert "JSON request header" in not_json.json()["errors"][0]["message"]

    statuses = list(
        AuditEvent.objects.filter(action="console.inferred", object_id=str(deployment.pk))
        .order_by("seq")
        .values_list("details__status", flat=True)
    )
    assert statuses == ["ok", "error 400"]  # the two calls that reached Triton
