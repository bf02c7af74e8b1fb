"""Turn a recorded repository into what the local, CPU-only Triton can serve.

The copy is the deployment's own, so rewriting it never touches the
recorded repository: KIND_GPU instance groups become KIND_CPU, and ONNX
models run through onnxruntime inside a generated Python-backend model.
"""

import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

_WRAPPER = Path(__file__).with_name("onnx_wrapper_model.py")
_ONNX_TYPES = {
    1: mc.TYPE_FP32,
    2: mc.TYPE_UINT8,
    3: mc.TYPE_INT8,
    4: mc.TYPE_UINT16,
    5: mc.TYPE_INT16,
    6: mc.TYPE_INT32,
    7: mc.TYPE_INT64,
    8: mc.TYPE_STRING,
    9: mc.TYPE_BOOL,
    10: mc.TYPE_FP16,
    11: mc.TYPE_FP64,
    12: mc.TYPE_UINT32,
    13: mc.TYPE_UINT64,
    16: mc.TYPE_BF16,
}


def _is_onnx(config: mc.ModelConfig, model_dir: Path) -> bool:
    if config.platform == "onnxruntime_onnx" or config.backend == "onnxruntime":
        return True
    if config.platform or config.backend:
        return False
    return any((version / "model.onnx").is_file() for version in model_dir.iterdir() if version.is_dir())


def _tensors_from_onnx(onnx_path: Path, config: mc.ModelConfig) -> None:
    """Fill inputs/outputs the way Triton's auto-complete would, from the graph."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def fill(values, target):
        for value in values:
            if value.name in initializers:
                continue
            tensor = target.add(name=value.name, data_type=_ONNX_TYPES.get(value.type.tensor_type.elem_type, 0))
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
            tensor.dims.extend(dims[1:] if config.max_batch_size > 0 else dims)

    if not config.input:
        fill(graph.input, config.input)
    if not config.output:
        fill(graph.output, config.output)


def _onnx_to_python(model_dir: Path, config: mc.ModelConfig) -> str:
    filename = config.default_model_filename or "model.onnx"
    versions = [v for v in model_dir.iterdir() if v.is_dir() and v.name.isdigit()]
    if versions and (not config.input or not config.output):
        _tensors_from_onnx(versions[0] / filename, config)
    for version in versions:
        shutil.copyfile(_WRAPPER, version / "model.py")
    config.platform = ""
    config.backend = "python"
    config.default_model_filename = ""
    config.parameters["onnx_file"].string_value = filename
    return f"{model_dir.name}: ONNX runs through onnxruntime in a Python-backend model (local CPU emulation)"


def _cpu_only(config: mc.ModelConfig) -> str | None:
    changed = False
    for group in config.instance_group:
        if group.kind == mc.ModelInstanceGroup.KIND_GPU:
            group.kind = mc.ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
            changed = True
    return f"{config.name}: instance_group KIND_GPU runs as KIND_CPU (no GPU here)" if changed else None


def stage(repository: Path, destination: Path) -> list[str]:
    """Copy `repository` to `destination` and adapt it; returns what was changed."""
    shutil.copytree(repository, destination, symlinks=False)
    notes = []
    for model_dir in sorted(p for p in destination.iterdir() if p.is_dir() and not p.name.startswith(".")):
        config_path = model_dir / "config.pbtxt"
        config = mc.ModelConfig()
        if config_path.is_file():
            text_format.Parse(config_path.read_text(), config)
        config.name = config.name or model_dir.name
        changes = []
        if _is_onnx(config, model_dir):
            changes.append(_onnx_to_python(model_dir, config))
        if note := _cpu_only(config):
            changes.append(note)
        if changes:
            config_path.write_text(text_format.MessageToString(config))
            notes.extend(changes)
    return notes
