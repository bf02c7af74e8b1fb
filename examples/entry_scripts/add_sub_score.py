"""Entry script for the add_sub example, written as Azure ML's Triton guide
shows it: init() connects to the Triton beside it at localhost:8000 (inside
the deployment, not your machine), run() takes JSON and calls it. The same
file runs on Azure and on the dashboard's local target, unchanged.

    POST /score {"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]}
    -> {"sum": [11, 22, 33, 44], "difference": [-9, -18, -27, -36]}
"""

import json
import os

import numpy as np
import tritonhttpclient


def init():
    global triton_client
    triton_client = tritonhttpclient.InferenceServerClient(url="localhost:8000")


def run(raw_data):
    body = json.loads(raw_data)
    inputs = []
    for name, key in (("INPUT0", "a"), ("INPUT1", "b")):
        data = np.asarray(body[key], dtype=np.float32)
        tensor = tritonhttpclient.InferInput(name, list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = triton_client.infer("add_sub", inputs, request_id="0")
    return {
        "sum": result.as_numpy("OUTPUT0").tolist(),
        "difference": result.as_numpy("OUTPUT1").tolist(),
        "workers": int(os.environ.get("WORKER_COUNT", "1")),
    }
