"""Python-backend model that runs model.onnx through onnxruntime.

Copied as model.py into each version of an ONNX model deployed to the local
target: Triton's own onnxruntime backend does not exist on these CPU-only
machines, so the dashboard emulates it (the deployment page says so).
"""

import json
import os

import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        filename = config.get("parameters", {}).get("onnx_file", {}).get("string_value") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            results = self.session.run(self.outputs, feeds)
            tensors = [pb_utils.Tensor(name, value) for name, value in zip(self.outputs, results, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
