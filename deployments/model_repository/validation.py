"""Validate a Triton model repository before anything is deployed.

config.pbtxt is parsed with Triton's own schema (ModelConfig from
tritonclient's model_config_pb2) through protobuf's text_format, so unknown
fields and wrong types are reported with line and column exactly as Triton
would. On top of the schema: the checks that make Triton refuse a model at
load time, found here in seconds instead of after a 15-minute AKS deploy.

Each finding names the model, the file and what to change. Errors block
deployment; warnings are shown.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from deployments.model_repository.layout import _VERSION

ERROR, WARNING = "error", "warning"

# Model file (or directory) name -> (backend, platform) Triton would use for it.
_MODEL_FILES = {
    "model.onnx": ("onnxruntime", "onnxruntime_onnx"),
    "model.plan": ("tensorrt", "tensorrt_plan"),
    "model.savedmodel": ("tensorflow", "tensorflow_savedmodel"),
    "model.graphdef": ("tensorflow", "tensorflow_graphdef"),
    "model.pt": ("pytorch", "pytorch_libtorch"),
    "model.py": ("python", ""),
    "model.xml": ("openvino", ""),
}
_PLATFORM_BACKEND = {
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "tensorflow_savedmodel": "tensorflow",
    "tensorflow_graphdef": "tensorflow",
    "pytorch_libtorch": "pytorch",
}
_DEFAULT_FILE = {backend_platform: name for name, backend_platform in _MODEL_FILES.items()}
# Backends whose Triton fills inputs/outputs from the model file itself.
_SELF_DESCRIBING = {"onnxruntime", "tensorrt", "openvino"}
# Plain names only: Triton builds paths and, for Python models, a shell command
# line from model folder and file names, and clients put them in URLs.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_AUTO_COMPLETE_DEF = re.compile(rb"def\s+auto_complete_config\s*\(")


@dataclass(frozen=True)
class Finding:
    severity: str
    model: str
    file: str
    message: str

    def as_dict(self) -> dict:
        return {"severity": self.severity, "model": self.model, "file": self.file, "message": self.message}


@dataclass
class Tensor:
    name: str
    datatype: str
    dims: list[int]
    label_filename: str = ""

    def as_dict(self) -> dict:
        data = {"name": self.name, "datatype": self.datatype, "dims": self.dims}
        if self.label_filename:
            data["label_filename"] = self.label_filename
        return data


@dataclass
class ModelInfo:
    name: str
    backend: str = ""
    platform: str = ""
    max_batch_size: int = 0
    versions: list[int] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    config_source: str = "auto-complete"  # or "explicit", or "unreadable" (a config.pbtxt that does not parse)
    config_text: str = ""
    warnings: list[str] = field(default_factory=list)
    config: mc.ModelConfig | None = None

    @property
    def is_ensemble(self) -> bool:
        return self.platform == "ensemble"


@dataclass
class ValidationReport:
    models: list[ModelInfo]
    findings: list[Finding]

    @property
    def valid(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)


def datatype_name(value: int) -> str:
    """TYPE_FP32 -> FP32; TYPE_STRING -> BYTES, the name clients send."""
    name = mc.DataType.Name(value).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


class _ModelCheck:
    """Collects one model's findings and facts."""

    def __init__(self, directory: Path, limits):
        self.dir = directory
        self.limits = limits
        self.info = ModelInfo(name=directory.name)
        self.findings: list[Finding] = []

    def error(self, message: str, file: str = "") -> None:
        self.findings.append(Finding(ERROR, self.info.name, file or f"{self.info.name}/", message))

    def warn(self, message: str, file: str = "") -> None:
        self.findings.append(Finding(WARNING, self.info.name, file or f"{self.info.name}/", message))
        self.info.warnings.append(message)

    @property
    def config_file(self) -> str:
        return f"{self.info.name}/config.pbtxt"

    def run(self) -> None:
        if not _SAFE_NAME.match(self.info.name):
            self.error(
                "the model name must be a plain name: letters, digits, '_', '.' and '-', not starting with '.' "
                "or '-' (Triton passes it to a shell for Python models, and clients put it in URLs)"
            )
        self._read_versions()
        config = self._read_config()
        self._settle_backend(config)
        if config is not None:
            self._check_config(config)
        self._check_model_files()

    # --- versions ------------------------------------------------------------

    def _read_versions(self) -> None:
        versions = []
        for child in sorted(self.dir.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                if _VERSION.match(child.name):
                    versions.append(int(child.name))
                else:
                    self.warn(
                        f"folder '{child.name}' is ignored by Triton: version folders are whole numbers (1, 2, ...)",
                        f"{self.info.name}/{child.name}/",
                    )
            elif child.name in _MODEL_FILES:
                self.warn(
                    f"'{child.name}' sits beside config.pbtxt, where Triton never looks: "
                    f"move it into a version folder, e.g. {self.info.name}/1/{child.name}",
                    f"{self.info.name}/{child.name}",
                )
        self.info.versions = sorted(versions)
        if not versions:
            misplaced = next((name for name in _MODEL_FILES if (self.dir / name).exists()), "model.onnx")
            self.error(
                "no version folder: put the model files in a numbered folder, e.g. "
                f"{self.info.name}/1/{misplaced} (Azure ML and Triton both need one)"
            )
        if 0 in versions:
            self.warn(
                "version 0 is never loaded by Triton's default version policy; start at 1", f"{self.info.name}/0/"
            )

    # --- config.pbtxt --------------------------------------------------------

    def _read_config(self) -> mc.ModelConfig | None:
        path = self.dir / "config.pbtxt"
        if not path.is_file():
            return None
        self.info.config_source = "explicit"
        size = path.stat().st_size
        if size > self.limits.max_config_bytes:
            self.error(
                f"config.pbtxt is {size:,} bytes; configs are small text files "
                f"(the limit is {self.limits.max_config_bytes:,})",
                self.config_file,
            )
            return None
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text:
            self.error("config.pbtxt is binary; Triton expects protobuf text format", self.config_file)
            self.info.config_source = "unreadable"
            return None
        self.info.config_text = text
        config = mc.ModelConfig()
        try:
            text_format.Parse(text, config)
        except text_format.ParseError as exc:
            where = f"line {exc.GetLine()}, column {exc.GetColumn()}" if exc.GetLine() else "config"
            message = str(exc).split(" : ", 1)[-1]
            self.error(f"{where}: {message}", f"{self.config_file}:{exc.GetLine() or 1}")
            self.info.config_source = "unreadable"
            return None
        except Exception as exc:  # protobuf raises a few other types on odd input
            self.error(f"cannot parse config.pbtxt: {exc}", self.config_file)
            self.info.config_source = "unreadable"
            return None
        self.info.config = config
        return config

    # --- backend / platform --------------------------------------------------

    def _files_in_versions(self) -> set[str]:
        names = set()
        for version in self.info.versions:
            names.update(child.name for child in (self.dir / str(version)).iterdir())
        return names

    def _settle_backend(self, config: mc.ModelConfig | None) -> None:
        info = self.info
        if config is not None:
            info.backend = config.backend
            info.platform = config.platform
            if config.platform and config.platform in _PLATFORM_BACKEND and not info.backend:
                info.backend = _PLATFORM_BACKEND[config.platform]
        if info.backend or info.platform:
            return
        present = self._files_in_versions()
        default_name = config.default_model_filename if config is not None else ""
        found = [name for name in _MODEL_FILES if name in present or name == default_name]
        if len(found) > 1:
            self.warn(f"several model files ({', '.join(found)}); Triton will use {found[0]}")
        if found:
            info.backend, info.platform = _MODEL_FILES[found[0]]
            return
        if config is None:
            self.error(
                "no config.pbtxt and no model file Triton recognises (model.onnx, model.plan, model.savedmodel, "
                "model.graphdef, model.pt, model.py): add a config.pbtxt with 'backend' set"
            )
        else:
            self.error(
                "config.pbtxt sets neither 'backend' nor 'platform', and no model file shows which", self.config_file
            )

    def _can_auto_complete(self) -> tuple[bool, str]:
        backend, platform = self.info.backend, self.info.platform
        if platform == "tensorflow_savedmodel" or backend in _SELF_DESCRIBING:
            return True, ""
        if backend == "python":
            for version in self.info.versions:
                script = self.dir / str(version) / "model.py"
                if script.is_file() and _AUTO_COMPLETE_DEF.search(script.read_bytes()):
                    return True, ""
            return False, "a Python model without an auto_complete_config() in model.py"
        if platform == "ensemble":
            return False, "an ensemble"
        return False, f"the {backend or platform} backend"

    # --- the config's content ------------------------------------------------

    def _check_config(self, config: mc.ModelConfig) -> None:
        info, where = self.info, self.config_file
        if config.name and config.name != info.name:
            self.error(
                f"name is '{config.name}' but the folder is '{info.name}': Triton refuses the mismatch; "
                f"rename one or remove the name line",
                where,
            )
        if (
            config.platform in _PLATFORM_BACKEND
            and config.backend
            and config.backend != _PLATFORM_BACKEND[config.platform]
        ):
            self.error(f"platform '{config.platform}' and backend '{config.backend}' disagree; keep one", where)
        if config.max_batch_size < 0:
            self.error("max_batch_size cannot be negative", where)
        info.max_batch_size = max(config.max_batch_size, 0)
        self._check_version_policy(config)
        info.inputs = self._check_tensors(config.input, "input", config)
        info.outputs = self._check_tensors(config.output, "output", config)
        can_complete, why_not = self._can_auto_complete()
        if not config.input and not info.is_ensemble and not can_complete:
            self.error(
                f"no inputs, and Triton cannot auto-complete them for {why_not}: list them under input [...]", where
            )
        if not config.output and not info.is_ensemble and not can_complete:
            self.error(
                f"no outputs, and Triton cannot auto-complete them for {why_not}: list them under output [...]", where
            )
        self._check_batching(config)
        self._check_instance_groups(config)

    def _check_version_policy(self, config: mc.ModelConfig) -> None:
        policy, where = config.version_policy, self.config_file
        choice = policy.WhichOneof("policy_choice")
        if choice == "specific":
            missing = sorted(set(policy.specific.versions) - set(self.info.versions))
            if missing:
                self.error(
                    f"version_policy asks for version(s) {', '.join(map(str, missing))}, "
                    f"which have no folder (present: {', '.join(map(str, self.info.versions)) or 'none'})",
                    where,
                )
        elif choice == "latest":
            wanted = policy.latest.num_versions
            if wanted < 1:
                self.error("version_policy latest needs num_versions of at least 1", where)
            elif wanted > len(self.info.versions):
                self.warn(
                    f"version_policy serves the latest {wanted} versions but only {len(self.info.versions)} exist",
                    where,
                )

    def _check_tensors(self, tensors, kind: str, config: mc.ModelConfig) -> list[Tensor]:
        where, result, names = self.config_file, [], set()
        for position, tensor in enumerate(tensors, start=1):
            label = f"{kind} '{tensor.name}'" if tensor.name else f"{kind} #{position}"
            if not tensor.name:
                self.error(f"{label} has no name", where)
            elif tensor.name in names:
                self.error(f"{label} is declared twice", where)
            names.add(tensor.name)
            if tensor.data_type == mc.TYPE_INVALID:
                self.error(f"{label} has no data_type (e.g. TYPE_FP32)", where)
            dims = list(tensor.dims)
            has_reshape = tensor.HasField("reshape")
            if not dims and not has_reshape:
                self.error(f"{label} has no dims; a scalar is dims: [ 1 ] with reshape: {{ shape: [ ] }}", where)
            for dim in dims:
                if dim == 0 or dim < -1:
                    self.error(f"{label} has dimension {dim}; use a positive size or -1 for variable", where)
            if config.max_batch_size > 0 and dims and dims[0] == -1 and not self.info.is_ensemble:
                self.warn(
                    f"{label} dims start with -1 while max_batch_size is {config.max_batch_size}: the batch "
                    f"dimension is implicit, so clients send shape [batch, {', '.join(map(str, dims))}]. "
                    "Drop the leading -1 if it was meant as the batch dimension",
                    where,
                )
            label_file = getattr(tensor, "label_filename", "")
            if label_file and not (self.dir / label_file).is_file():
                self.error(
                    f"{label} names label_filename '{label_file}', which is not in the model folder "
                    f"(expected {self.info.name}/{label_file})",
                    where,
                )
            result.append(Tensor(tensor.name, datatype_name(tensor.data_type), dims, label_file))
        return result

    def _check_batching(self, config: mc.ModelConfig) -> None:
        where = self.config_file
        if config.HasField("dynamic_batching"):
            if config.max_batch_size == 0:
                self.error("dynamic_batching needs max_batch_size > 0 (the model cannot batch)", where)
            for size in config.dynamic_batching.preferred_batch_size:
                if config.max_batch_size and size > config.max_batch_size:
                    self.error(f"preferred_batch_size {size} exceeds max_batch_size {config.max_batch_size}", where)
        if config.HasField("sequence_batching") and config.HasField("dynamic_batching"):
            self.error("a model uses either dynamic_batching or sequence_batching, not both", where)

    def _check_instance_groups(self, config: mc.ModelConfig) -> None:
        where = self.config_file
        for group in config.instance_group:
            name = f"instance_group '{group.name}'" if group.name else "instance_group"
            # proto3: an unset count reads 0, which Triton takes as 1.
            if group.count < 0:
                self.error(f"{name} count must be at least 1", where)
            if group.kind == mc.ModelInstanceGroup.KIND_GPU:
                self.warn(
                    f"{name} asks for KIND_GPU: it needs a GPU target; where there is none (the local target) "
                    "the dashboard runs it as KIND_CPU",
                    where,
                )
            elif group.kind == mc.ModelInstanceGroup.KIND_CPU and group.gpus:
                self.warn(f"{name} is KIND_CPU but lists gpus, which Triton ignores", where)

    # --- model files ---------------------------------------------------------

    def _check_model_files(self) -> None:
        info = self.info
        if info.is_ensemble or not (info.backend or info.platform):
            return
        config = info.config
        expected = (
            (config.default_model_filename if config is not None else "")
            or _DEFAULT_FILE.get((info.backend, info.platform))
            or _default_for_backend(info.backend)
        )
        if expected and not _SAFE_NAME.match(expected):
            self.error(
                f"default_model_filename {expected!r} must be a plain file name (letters, digits, '_', '.', '-')",
                self.config_file,
            )
            return
        if expected:
            for version in info.versions:
                if not (self.dir / str(version) / expected).exists():
                    self.error(
                        f"version {version} has no {expected} for the {info.backend or info.platform} backend",
                        f"{info.name}/{version}/",
                    )
        if config is None and not (self.dir / "config.pbtxt").exists():
            can_complete, why_not = self._can_auto_complete()
            if not can_complete:
                self.error(
                    f"no config.pbtxt, and Triton cannot auto-complete one for {why_not}: "
                    "add a config.pbtxt with backend, max_batch_size, inputs and outputs",
                    f"{info.name}/config.pbtxt",
                )


def _default_for_backend(backend: str) -> str:
    for name, (file_backend, _) in _MODEL_FILES.items():
        if file_backend == backend and name != "model.graphdef":
            return name
    return ""


def _check_ensembles(models: dict[str, ModelInfo]) -> list[Finding]:
    findings = []
    for model in models.values():
        if not model.is_ensemble or model.config is None:
            continue
        where = f"{model.name}/config.pbtxt"

        def error(message, model=model, where=where):
            findings.append(Finding(ERROR, model.name, where, message))

        steps = model.config.ensemble_scheduling.step
        if not steps:
            error("an ensemble needs ensemble_scheduling with at least one step")
            continue
        # Ensemble tensor name -> datatype ("" when not known).
        available = {tensor.name: tensor.datatype for tensor in model.inputs}
        produced = set()
        for index, step in enumerate(steps, start=1):
            target = models.get(step.model_name)
            if target is None:
                error(f"step {index} uses model '{step.model_name}', which is not in this repository")
                # Its outputs still count as produced, so one mistake is reported once.
                for ensemble_tensor in step.output_map.values():
                    produced.add(ensemble_tensor)
                    available[ensemble_tensor] = ""
                continue
            if target.is_ensemble and target.name == model.name:
                error(f"step {index} calls the ensemble itself")
                continue
            target_inputs = {t.name: t.datatype for t in target.inputs}
            target_outputs = {t.name: t.datatype for t in target.outputs}
            for step_input, ensemble_tensor in step.input_map.items():
                if target_inputs and step_input not in target_inputs:
                    error(f"step {index} maps '{step_input}', which is not an input of '{target.name}'")
                if ensemble_tensor not in available:
                    error(
                        f"step {index} feeds '{target.name}' from '{ensemble_tensor}', which is neither an "
                        "ensemble input nor produced by an earlier step"
                    )
                elif available[ensemble_tensor] and target_inputs.get(step_input) not in (
                    None,
                    available[ensemble_tensor],
                ):
                    error(
                        f"step {index}: '{ensemble_tensor}' is {available[ensemble_tensor]} but "
                        f"'{target.name}' input '{step_input}' expects {target_inputs[step_input]}"
                    )
            for step_output, ensemble_tensor in step.output_map.items():
                if target_outputs and step_output not in target_outputs:
                    error(f"step {index} maps '{step_output}', which is not an output of '{target.name}'")
                if ensemble_tensor in produced:
                    error(f"step {index} produces '{ensemble_tensor}', which an earlier step already produces")
                produced.add(ensemble_tensor)
                available[ensemble_tensor] = target_outputs.get(step_output, "")
        for output in model.outputs:
            if output.name not in produced:
                error(f"ensemble output '{output.name}' is produced by no step")
            elif available.get(output.name) and available[output.name] != output.datatype:
                error(
                    f"ensemble output '{output.name}' is declared {output.datatype} "
                    f"but its step produces {available[output.name]}"
                )
    return findings


# What Triton would load from a version folder (or read beside one).
_MODEL_SUFFIXES = {".onnx", ".pt", ".pth", ".plan", ".engine", ".graphdef", ".pb", ".savedmodel", ".bin", ".xml"}


def _model_file(name: str) -> bool:
    return name in ("config.pbtxt", "model.py") or Path(name).suffix.lower() in _MODEL_SUFFIXES


def validate_repository(root: Path, limits) -> ValidationReport:
    findings: list[Finding] = []
    models: dict[str, ModelInfo] = {}
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if not child.is_dir():
            findings.append(
                Finding(WARNING, "", child.name, "a file at the repository root; Triton only reads model folders")
            )
            continue
        check = _ModelCheck(child, limits)
        check.run()
        models[child.name] = check.info
        findings.extend(check.findings)
    loose = sorted(child.name for child in root.iterdir() if child.is_file() and _model_file(child.name))
    if not models and loose:
        # A model's files without their version folder (mymodel/model.onnx): say that, not "nothing found".
        example = next((name for name in loose if name != "config.pbtxt"), loose[0])
        findings.append(
            Finding(
                ERROR,
                "",
                example,
                f"missing version folder: {', '.join(loose[:5])} must sit in a numbered version folder, "
                f"e.g. <model>/1/{example} (Triton reads <model>/<version>/<file>)",
            )
        )
    elif not models:
        findings.append(
            Finding(
                ERROR,
                "",
                "",
                "no model folders found: expected <model>/<version>/<file> (or models/triton/<model>/... as in "
                "Azure ML's guide)",
            )
        )
    findings.extend(_check_ensembles(models))
    return ValidationReport(models=list(models.values()), findings=findings)
