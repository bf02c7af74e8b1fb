"""OUTPUT = factor * INPUT, with factor from the config's parameters."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.factor = float(config["parameters"]["factor"]["string_value"])

    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            scaled = pb_utils.Tensor("OUTPUT", (values * self.factor).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[scaled]))
        return responses
