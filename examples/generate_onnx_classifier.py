"""Writes the tiny ONNX classifier example, byte for byte the same every time.

    .venv/bin/python examples/generate_onnx_classifier.py

FEATURES (FP32, 4 values) -> a fixed linear layer -> softmax -> PROBABILITIES
(FP32, 3 classes named in labels.txt). Built with the `onnx` package alone:
nothing is downloaded.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TARGET = Path(__file__).resolve().parent / "model_repositories" / "onnx_classifier" / "tiny_classifier"
LABELS = ["setosa", "versicolor", "virginica"]
# Fixed weights: class i scores highest when feature i is the largest.
WEIGHTS = np.array([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, -1.0, 2.0], [0.5, 0.5, 0.5]], dtype=np.float32)
BIAS = np.array([0.1, 0.0, -0.1], dtype=np.float32)

CONFIG = """name: "tiny_classifier"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "FEATURES" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "PROBABILITIES" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" } ]
"""


def build_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["FEATURES", "W"], ["logits_nobias"]),
            helper.make_node("Add", ["logits_nobias", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["PROBABILITIES"], axis=-1),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("FEATURES", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("PROBABILITIES", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "B")],
    )
    # Pinned opset and IR version keep the bytes identical across onnx releases.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="triton-dashboard")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def write(target: Path = TARGET) -> Path:
    (target / "1").mkdir(parents=True, exist_ok=True)
    (target / "1" / "model.onnx").write_bytes(build_model().SerializeToString(deterministic=True))
    (target / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (target / "config.pbtxt").write_text(CONFIG)
    return target


if __name__ == "__main__":
    print(write())
