"""Validation findings, on the bundled examples and on targeted mistakes."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from deployments.model_repository.limits import IntakeLimits
from deployments.model_repository.validation import validate_repository
from tests.archives import EXAMPLES, ROOT

LIMITS = IntakeLimits(max_entries=1000, max_total_bytes=10**9, max_ratio=200, max_config_bytes=1024 * 1024)


def report_for(path: Path):
    return validate_repository(path, LIMITS)


def messages(report, severity):
    return [(f.model, f.message) for f in report.findings if f.severity == severity]


@pytest.mark.parametrize("example", ["add_sub", "onnx_classifier", "string_tools", "ensemble"])
def test_the_good_examples_have_no_errors(example):
    report = report_for(EXAMPLES / example)
    assert report.valid, messages(report, "error")


def test_the_azure_layout_example_is_valid_at_its_triton_folder():
    assert report_for(EXAMPLES / "azureml_layout" / "models" / "triton").valid


def test_the_broken_example_reports_each_mistake_with_model_and_file():
    report = report_for(EXAMPLES / "broken")
    errors = {(f.model, f.file): f.message for f in report.findings if f.severity == "error"}
    assert "folder is 'renamed'" in errors[("renamed", "renamed/config.pbtxt")]
    assert "no version folder" in errors[("no_version", "no_version/")]
    assert "line 5, column" in errors[("typo", "typo/config.pbtxt:5")]
    assert 'no field named "dim"' in errors[("typo", "typo/config.pbtxt:5")]
    assert "dynamic_batching needs max_batch_size > 0" in errors[("batcher", "batcher/config.pbtxt")]
    assert "'preprocess', which is not in this repository" in errors[("pipeline", "pipeline/config.pbtxt")]
    classifier = [f.message for f in report.findings if f.model == "classifier" and f.severity == "error"]
    assert any("label_filename 'labels.txt'" in m for m in classifier)
    assert any("no inputs" in m and "pytorch" in m for m in classifier)
    # One mistake, one finding: nothing follows from the missing ensemble step.
    assert len([f for f in report.findings if f.model == "pipeline"]) == 1
    assert not report.valid


def test_it_reads_the_model_facts():
    report = report_for(EXAMPLES / "string_tools")
    (model,) = report.models
    assert (model.backend, model.max_batch_size, model.versions, model.config_source) == ("python", 8, [1], "explicit")
    assert [(t.name, t.datatype, t.dims) for t in model.inputs] == [("TEXT", "BYTES", [1])]
    assert [t.datatype for t in model.outputs] == ["BYTES", "INT64"]


def write_model(root: Path, name: str, config: str | None, files: dict[str, bytes | str]):
    model = root / name
    model.mkdir(parents=True)
    if config is not None:
        (model / "config.pbtxt").write_text(config)
    for relative, content in files.items():
        path = model / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_an_onnx_model_without_config_is_left_to_auto_complete(tmp_path):
    write_model(tmp_path, "clf", None, {"1/model.onnx": b"onnx"})
    report = report_for(tmp_path)
    assert report.valid
    (model,) = report.models
    assert (model.backend, model.platform, model.config_source) == ("onnxruntime", "onnxruntime_onnx", "auto-complete")


def test_a_python_model_without_config_needs_auto_complete_config(tmp_path):
    write_model(tmp_path, "plain", None, {"1/model.py": "class TritonPythonModel: pass"})
    write_model(
        tmp_path,
        "completes",
        None,
        {
            "1/model.py": (
                "class TritonPythonModel:\n    @staticmethod\n    def auto_complete_config(c):\n        return c"
            )
        },
    )
    report = report_for(tmp_path)
    assert [m for m, text in messages(report, "error")] == ["plain"]
    assert "auto_complete_config" in messages(report, "error")[0][1]


def test_a_folder_without_a_recognised_model_file_needs_a_config(tmp_path):
    write_model(tmp_path, "mystery", None, {"1/weights.bin": b"\x00"})
    assert "no model file Triton recognises" in messages(report_for(tmp_path), "error")[0][1]


def test_version_policy_must_match_the_folders(tmp_path):
    config = 'backend: "onnxruntime"\nversion_policy: { specific: { versions: [1, 3] } }'
    write_model(tmp_path, "clf", config, {"1/model.onnx": b"x", "2/model.onnx": b"x"})
    assert "version(s) 3, which have no folder" in messages(report_for(tmp_path), "error")[0][1]


def test_a_version_without_its_model_file_is_an_error(tmp_path):
    write_model(tmp_path, "clf", 'platform: "onnxruntime_onnx"', {"1/model.onnx": b"x", "2/other.bin": b"x"})
    assert messages(report_for(tmp_path), "error") == [
        ("clf", "version 2 has no model.onnx for the onnxruntime backend")
    ]


def test_tensor_mistakes_are_errors_and_suspicious_shapes_warnings(tmp_path):
    config = """backend: "python"
max_batch_size: 4
input [ { name: "A" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "A" data_type: TYPE_FP32 dims: [ 0 ] } ]
output [ { name: "B" dims: [ 2 ] } ]
instance_group [ { kind: KIND_GPU } ]
"""
    write_model(tmp_path, "m", config, {"1/model.py": "x"})
    report = report_for(tmp_path)
    errors = [m for _, m in messages(report, "error")]
    assert any("declared twice" in m for m in errors)
    assert any("dimension 0" in m for m in errors)
    assert any("has no data_type" in m for m in errors)
    warnings = [m for _, m in messages(report, "warning")]
    assert any("dims start with -1 while max_batch_size is 4" in m for m in warnings)
    assert any("KIND_GPU" in m for m in warnings)


def test_ensemble_datatypes_must_line_up(tmp_path):
    write_model(
        tmp_path,
        "step",
        'backend: "python"\ninput [ { name: "X" data_type: TYPE_INT32 dims: [1] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [1] } ]',
        {"1/model.py": "x"},
    )
    write_model(
        tmp_path,
        "ens",
        'platform: "ensemble"\ninput [ { name: "IN" data_type: TYPE_FP32 dims: [1] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP16 dims: [1] } ]\n'
        'ensemble_scheduling { step [ { model_name: "step" model_version: -1 input_map { key: "X" value: "IN" } '
        'output_map { key: "Y" value: "OUT" } } ] }',
        {"1/.keep": b""},
    )
    errors = [m for _, m in messages(report_for(tmp_path), "error")]
    assert any("'IN' is FP32 but 'step' input 'X' expects INT32" in m for m in errors)
    assert any("'OUT' is declared FP16 but its step produces FP32" in m for m in errors)


def test_an_empty_repository_says_what_layout_is_expected(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    report = report_for(tmp_path)
    assert "no model folders found" in messages(report, "error")[0][1]


def test_the_onnx_example_is_regenerated_byte_for_byte(tmp_path):
    committed = EXAMPLES / "onnx_classifier" / "tiny_classifier"
    script = ROOT / "examples" / "generate_onnx_classifier.py"
    code = f"import runpy; runpy.run_path({str(script)!r})['write'](__import__('pathlib').Path({str(tmp_path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    for name in ["1/model.onnx", "labels.txt", "config.pbtxt"]:
        assert (
            hashlib.sha256((tmp_path / name).read_bytes()).digest()
            == hashlib.sha256((committed / name).read_bytes()).digest()
        ), name


def test_the_onnx_example_classifies_with_onnxruntime():
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(EXAMPLES / "onnx_classifier/tiny_classifier/1/model.onnx"))
    (probabilities,) = session.run(None, {"FEATURES": np.array([[0.0, 5.0, 0.0, 0.0]], dtype=np.float32)})
    assert probabilities.shape == (1, 3)
    assert int(probabilities.argmax()) == 1  # versicolor
    assert abs(float(probabilities.sum()) - 1.0) < 1e-5


# --- property-based: arbitrary input never crashes the validator ---------------

_PBTXT_WORDS = st.sampled_from(
    [
        "name:",
        "backend:",
        "platform:",
        "max_batch_size:",
        "input",
        "output",
        "[",
        "]",
        "{",
        "}",
        "dims:",
        "data_type:",
        "TYPE_FP32",
        "TYPE_STRING",
        "-1",
        "0",
        "8",
        '"python"',
        '"m"',
        "ensemble_scheduling",
        "step",
        "model_name:",
        "input_map",
        "key:",
        "value:",
        "version_policy:",
        "specific:",
        "versions:",
        ",",
        "\n",
    ]
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=400), st.lists(_PBTXT_WORDS, max_size=60).map(" ".join)))
def test_any_config_text_gives_findings_never_an_exception(tmp_path, text):
    root = tmp_path / "repo"
    shutil.rmtree(root, ignore_errors=True)
    model = root / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text("x")
    (model / "config.pbtxt").write_text(text, errors="surrogatepass")
    report = validate_repository(root, LIMITS)
    assert all(f.severity in ("error", "warning") and f.model == "m" for f in report.findings if f.model)


@pytest.mark.parametrize("name", ["m<svg onload=alert(1)>", "a b", "-rf", "it's", "m;id", "m$(id)"])
def test_a_model_name_triton_would_hand_to_a_shell_is_an_error(tmp_path, name):
    model = tmp_path / name / "1"
    model.mkdir(parents=True)
    (model / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    (tmp_path / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n')
    report = report_for(tmp_path)
    assert any(f.severity == "error" and "plain name" in f.message and f.model == name for f in report.findings)


def test_a_model_file_name_that_is_not_plain_is_an_error(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\nbackend: "python"\ndefault_model_filename: "x;id.py"\n')
    report = report_for(tmp_path)
    assert any(f.severity == "error" and "plain file name" in f.message for f in report.findings)


@pytest.mark.django_db
def test_model_files_without_a_version_folder_are_named_as_such(tmp_path, django_user_model):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    from deployments.services.repositories import repository_upload

    # As a person zips it: one folder with the model file directly inside.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mymodel/model.onnx", b"not really onnx")
    user = django_user_model.objects.create_superuser("zipper", password="x")
    upload = SimpleUploadedFile("mymodel.zip", buffer.getvalue(), content_type="application/zip")
    repository = repository_upload(name="", archive=upload, filename="mymodel.zip", actor=user).repository
    errors = " | ".join(e["message"] for e in repository.errors)
    assert "missing version folder" in errors
    assert "e.g. <model>/1/model.onnx" in errors
    assert "no model folders found" not in errors
