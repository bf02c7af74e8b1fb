"""add_sub as a candidate can go wrong: revisions of the `example: add_sub`
line whose model answers wrongly, fails one request in four (or in five),
or is slow. Each is a real Python-backend model for a real Triton."""

import shutil
from pathlib import Path

from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES

_HEAD = '''"""add_sub, as a rollout's candidate: {what}."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.served = 0

    def execute(self, requests):
        responses = []
        for request in requests:
            self.served += 1
            in0 = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            in1 = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
'''
_TAIL = """            out0 = pb_utils.Tensor("OUTPUT0", (in0 + in1).astype(np.float32))
            out1 = pb_utils.Tensor("OUTPUT1", (in0 - in1).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out0, out1]))
        return responses
"""
BEHAVIOURS = {
    # Outputs a golden request catches: the sum is a product.
    "wrong": (
        "it multiplies where it should add",
        """            out0 = pb_utils.Tensor("OUTPUT0", (in0 * in1).astype(np.float32))
            out1 = pb_utils.Tensor("OUTPUT1", (in0 - in1).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out0, out1]))
        return responses
""",
    ),
    # A BACKEND failure in Triton's counters, an HTTP 500 at the endpoint.
    "flaky": (
        "every fourth request raises",
        """            if self.served % 4 == 0:
                raise RuntimeError("the flaky candidate fails one request in four")
"""
        + _TAIL,
    ),
    "slow": ("it takes 60 ms more per request", "            time.sleep(0.06)\n" + _TAIL),
    # A failure rate of 20 % per model instance (bench/rollout_rollback.py).
    "fails_fifth": (
        "every fifth request raises",
        """            if self.served % 5 == 0:
                raise RuntimeError("the candidate fails one request in five")
"""
        + _TAIL,
    ),
    # A baseline of known latency: "slow" takes three times as long.
    "paced": ("it takes 20 ms per request", "            time.sleep(0.02)\n" + _TAIL),
    # Correct, and different from the baseline's files: a good candidate.
    "good": ("a correct revision", "            # a good revision\n" + _TAIL),
}


def candidate_revision(tmp_path: Path, behaviour: str, actor, *, instances: int = 1):
    """A new revision of the add_sub line whose model behaves as named,
    served by `instances` model instances (the example's one by default)."""
    what, body = BEHAVIOURS[behaviour]
    folder = tmp_path / behaviour / "add_sub"
    shutil.copytree(EXAMPLES / "add_sub", folder)
    (folder / "add_sub" / "1" / "model.py").write_text(_HEAD.format(what=what) + body)
    if instances != 1:
        config = folder / "add_sub" / "config.pbtxt"
        config.write_text(config.read_text().replace("count: 1", f"count: {instances}"))
    return repository_load_example(path=folder, actor=actor).repository


GOLDEN = {
    "name": "ones and tens",
    "model": "add_sub",
    "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [10, 20, 30, 40]},
    ],
    "expected": [{"name": "OUTPUT0", "data": [11, 22, 33, 44]}, {"name": "OUTPUT1", "data": [-9, -18, -27, -36]}],
}
