"""Reproducible snippets of a console call: Python with tritonclient.http (as
in Azure's Triton guide) and curl. The key is never written out."""

import json
import shlex
from urllib.parse import urlsplit

KEY_PLACEHOLDER = "<your endpoint key>"
_NUMPY = {
    "FP16": "np.float16",
    "FP32": "np.float32",
    "FP64": "np.float64",
    "INT8": "np.int8",
    "INT16": "np.int16",
    "INT32": "np.int32",
    "INT64": "np.int64",
    "UINT8": "np.uint8",
    "BOOL": "np.bool_",
    "BYTES": "np.object_",
}


def python_snippet(*, base: str, model: str, version: str, inputs: list[dict], keyed: bool) -> str:
    parts = urlsplit(base)
    lines = [
        "import numpy as np",
        "import tritonclient.http as tritonhttpclient",
        "",
        f"client = tritonhttpclient.InferenceServerClient({(parts.netloc + parts.path).rstrip('/')!r}"
        + (", ssl=True)" if parts.scheme == "https" else ")"),
        f"headers = {{'Authorization': 'Bearer {KEY_PLACEHOLDER}'}}" if keyed else "headers = {}",
        "inputs = []",
    ]
    for spec in inputs:
        name, datatype, shape = spec["name"], spec["datatype"], list(spec["shape"])
        values = spec["values"]
        if datatype == "BYTES":
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
            array = f"np.array({[x.encode() for x in values]!r}, dtype=np.object_).reshape({shape})"
        else:
            array = f"np.array({values!r}, dtype={_NUMPY.get(datatype, 'np.float32')}).reshape({shape})"
        lines += [
            f"inputs.append(tritonhttpclient.InferInput({name!r}, {shape}, {datatype!r}))",
            f"inputs[-1].set_data_from_numpy({array})",
        ]
    version_arg = f", model_version={version!r}" if version else ""
    lines += [
        f"result = client.infer({model!r}, inputs{version_arg}, headers=headers)",
        "print({o['name']: result.as_numpy(o['name']).tolist() for o in result.get_response()['outputs']})",
    ]
    return "\n".join(lines) + "\n"


def curl_snippet(*, base: str, model: str, version: str, inputs: list[dict], keyed: bool) -> str:
    from deployments.console.infer import model_path

    path = model_path(model, version, "/infer")
    body = {
        "inputs": [
            {
                "name": s["name"],
                "shape": list(s["shape"]),
                "datatype": s["datatype"],
                "data": [v.decode() if isinstance(v, bytes) else v for v in s["values"]],
            }
            for s in inputs
        ]
    }
    # Quoted for the shell: text inputs may hold quotes of their own.
    auth = f" \\\n  -H {shlex.quote(f'Authorization: Bearer {KEY_PLACEHOLDER}')}" if keyed else ""
    return (
        f"curl -sS -X POST {shlex.quote(base.rstrip('/') + path)}{auth} \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(json.dumps(body))}\n"
    )
