"""OUTPUT0 = 2 * INPUT0, at a fixed cost per execution plus a small cost per item.

The costs are waits, not computation: on a CPU-only machine they behave as a
GPU's launch and per-item times would, without taking the cores the clients
and Triton need.
"""

import time

import numpy as np
import triton_python_backend_utils as pb_utils

LAUNCH_SECONDS = 0.010
PER_ITEM_SECONDS = 0.0002


class TritonPythonModel:
    def execute(self, requests):
        # With dynamic batching Triton hands over several requests at once:
        # one launch serves them all.
        items = 0
        inputs = []
        for request in requests:
            array = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            inputs.append(array)
            items += array.shape[0]
        time.sleep(LAUNCH_SECONDS + PER_ITEM_SECONDS * items)
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", (array * 2).astype(np.float32))])
            for array in inputs
        ]
