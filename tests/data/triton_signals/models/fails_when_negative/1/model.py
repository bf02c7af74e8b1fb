"""Fails in the backend (raises) on a negative input; answers with an error
response (but does not raise) on an input above 100; echoes otherwise."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if (values < 0).any():
                raise RuntimeError("negative input")
            if (values > 100).any():
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("input above 100")))
            else:
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", values)]))
        return responses
