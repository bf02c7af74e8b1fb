"""Entry script for the add_sub example, as in Azure ML's Triton guide:
init() connects to the Triton next to it, run() takes JSON and calls it.

    POST /score {"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]}
    -> {"sum": [11, 22, 33, 44], "difference": [-9, -18, -27, -36]}
"""

import json
import os

import numpy as np
import tritonclient.http as triton_http

client = None


def init():
    global client
    url = os.environ["TRITON_URL"].removeprefix("http://").removeprefix("https://")
    client = triton_http.InferenceServerClient(url)


def run(raw_data):
    body = json.loads(raw_data)
    inputs = []
    for name, key in (("INPUT0", "a"), ("INPUT1", "b")):
        values = np.asarray(body[key], dtype=np.float32)
        tensor = triton_http.InferInput(name, list(values.shape), "FP32")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    result = client.infer("add_sub", inputs)
    return {
        "sum": result.as_numpy("OUTPUT0").tolist(),
        "difference": result.as_numpy("OUTPUT1").tolist(),
        "workers": int(os.environ.get("WORKER_COUNT", "1")),
    }
