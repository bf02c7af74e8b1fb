"""A rollout's plan, checked field by field before anything is saved: steps
that end at 100 %, bake times the observation can judge, gates the target's
kind can measure, golden requests that fit the candidate's models. The
plan's digest is what an approval binds."""

import hashlib
import json
import math

from django.conf import settings

from deployments.errors import DomainError

# Each gate: its name, the settings it takes with their defaults, and what it
# compares. Ratios are candidate / baseline; a floor lets a candidate pass
# when the baseline is so quiet that any ratio would block it.
GATES = {
    "failure_rate": {
        "defaults": {"max_ratio": 2.0, "floor": 0.01},
        "means": "failed requests / requests",
    },
    "p95_ms": {"defaults": {"max_ratio": 1.5, "floor": 50.0}, "means": "95th percentile request latency (ms)"},
    "p99_ms": {"defaults": {"max_ratio": 2.0, "floor": 100.0}, "means": "99th percentile request latency (ms)"},
    "queue_share": {
        "defaults": {"max_ratio": 2.0, "floor": 0.25},
        "means": "time requests spent queued / request time",
    },
}
# Which gates are on when a plan names none.
DEFAULT_GATES = ("failure_rate", "p95_ms", "p99_ms", "queue_share")
# Candidate requests a window needs before a ratio gate may fail it: with
# fewer, one unlucky request would roll back a good candidate.
DEFAULT_MIN_REQUESTS = 20
MAX_STEPS = 10
MAX_GOLDEN = 20
MAX_BAKE_SECONDS = 24 * 3600


def observation_interval() -> int:
    """How often the driver reads the figures: the reconciler's beat."""
    return settings.RECONCILE_INTERVAL


def clean_steps(steps) -> list[dict]:
    if not isinstance(steps, list) or not steps:
        raise DomainError("steps is a list of {traffic, bake_seconds}, ending at 100.", path="steps")
    if len(steps) > MAX_STEPS:
        raise DomainError(f"A plan has at most {MAX_STEPS} steps.", path="steps")
    shortest = 2 * observation_interval()
    clean, before = [], 0
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict) or set(step) - {"traffic", "bake_seconds"}:
            raise DomainError(f"{where} is {{traffic, bake_seconds}}.", path=where)
        traffic, bake = step.get("traffic"), step.get("bake_seconds")
        if isinstance(traffic, bool) or not isinstance(traffic, int) or not 1 <= traffic <= 100:
            raise DomainError(f"{where}.traffic is a whole percentage from 1 to 100.", path=f"{where}.traffic")
        if traffic <= before:
            raise DomainError(
                f"{where}.traffic {traffic}% does not grow from the step before ({before}%).", path=f"{where}.traffic"
            )
        if isinstance(bake, bool) or not isinstance(bake, int) or not shortest <= bake <= MAX_BAKE_SECONDS:
            raise DomainError(
                f"{where}.bake_seconds is a whole number from {shortest} (two observation intervals of "
                f"{observation_interval()} s: one read is no window) to {MAX_BAKE_SECONDS}.",
                path=f"{where}.bake_seconds",
            )
        clean.append({"traffic": traffic, "bake_seconds": bake})
        before = traffic
    if before != 100:
        raise DomainError(f"The last step takes {before}% of the traffic; a plan ends at 100%.", path="steps")
    return clean


def _number(value, where: str, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise DomainError(f"{where} is a number from {low:g}.", path=where)
    return float(value)


def clean_gates(gates, *, signals: dict[str, str], has_reasons: bool) -> dict:
    """`signals`: the gates the target's kind can measure, with their sources."""
    if gates in (None, {}):
        gates = {name: {} for name in DEFAULT_GATES if name in signals}
    if not isinstance(gates, dict):
        raise DomainError("gates is an object: {gate: {max_ratio, floor}}.", path="gates")
    clean = {}
    for name, given in gates.items():
        where = f"gates.{name}"
        if name == "min_requests":
            if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= 100000:
                raise DomainError("gates.min_requests is a whole number from 1.", path=where)
            clean[name] = given
            continue
        if name not in GATES:
            known = ", ".join([*GATES, "min_requests"])
            raise DomainError(f"Unknown gate {name} (gates are {known}).", path=where)
        if name not in signals:
            raise DomainError(f"This target's kind cannot measure {name} ({GATES[name]['means']}).", path=where)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise DomainError(f"{where} is an object: {{max_ratio, floor}}.", path=where)
        allowed = set(GATES[name]["defaults"]) | ({"reasons"} if name == "failure_rate" else set())
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise DomainError(
                f"{where} takes {', '.join(sorted(allowed))}, not {unknown[0]}.", path=f"{where}.{unknown[0]}"
            )
        gate = dict(GATES[name]["defaults"])
        for key in GATES[name]["defaults"]:
            if key in given:
                gate[key] = _number(given[key], f"{where}.{key}", low=1.0 if key == "max_ratio" else 0.0)
        if "reasons" in given:
            if not has_reasons:
                raise DomainError(
                    f"{where}.reasons: this target's kind counts failures without Triton's reasons "
                    f"({signals[name]}); leave reasons out.",
                    path=f"{where}.reasons",
                )
            reasons = given["reasons"]
            if not isinstance(reasons, list) or not reasons or not all(isinstance(r, str) for r in reasons):
                raise DomainError(f'{where}.reasons is a list such as ["BACKEND"].', path=f"{where}.reasons")
            gate["reasons"] = sorted({r.upper() for r in reasons})
        clean[name] = gate
    clean.setdefault("min_requests", DEFAULT_MIN_REQUESTS)
    return clean


def _tensor_fits(tensor: dict, declared: dict, batched: bool, where: str) -> None:
    if tensor.get("datatype") != declared["datatype"]:
        raise DomainError(
            f"{where}: {tensor.get('name')} is {declared['datatype']} in the model, not {tensor.get('datatype')}.",
            path=f"{where}.datatype",
        )
    shape, dims = tensor.get("shape"), list(declared.get("dims") or [])
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise DomainError(f"{where}.shape is a list of whole numbers.", path=f"{where}.shape")
    expected = ([-1] if batched else []) + dims
    if dims and (len(shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, shape, strict=False))):
        raise DomainError(
            f"{where}: shape {shape} does not fit {tensor.get('name')}'s {expected} (-1: any size).",
            path=f"{where}.shape",
        )


def models_of(repository) -> dict:
    """What clean_golden checks requests against: each model's inputs, outputs, batching and versions."""
    return {
        m.name: {
            "inputs": m.inputs,
            "outputs": m.outputs,
            "max_batch_size": m.max_batch_size,
            "versions": list(m.served_versions),
        }
        for m in repository.models.all()
    }


def clean_golden(golden, *, models: dict) -> list[dict]:
    """`models`: models_of() the repository the requests will reach."""
    from deployments.console import tensors

    if golden in (None, []):
        return []
    if not isinstance(golden, list):
        raise DomainError("golden_requests is a list.", path="golden_requests")
    if len(golden) > MAX_GOLDEN:
        raise DomainError(f"A plan has at most {MAX_GOLDEN} golden requests.", path="golden_requests")
    clean = []
    for index, request in enumerate(golden):
        where = f"golden_requests[{index}]"
        if not isinstance(request, dict):
            raise DomainError(f"{where} is {{model, inputs, expected, tolerance}}.", path=where)
        model = request.get("model")
        if model not in models:
            raise DomainError(
                f"{where}.model: the candidate's repository has no model {model!r} "
                f"(it has {', '.join(sorted(models))}).",
                path=f"{where}.model",
            )
        meta = models[model]
        version = str(request.get("version") or "")
        if version and (not version.isdigit() or int(version) not in meta["versions"]):
            raise DomainError(f"{where}.version: {model} has no version {version}.", path=f"{where}.version")
        batched = meta["max_batch_size"] > 0
        declared_inputs = {t["name"]: t for t in meta["inputs"]}
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise DomainError(f"{where}.inputs is a list of tensors.", path=f"{where}.inputs")
        names = set()
        for position, tensor in enumerate(inputs):
            at = f"{where}.inputs[{position}]"
            if not isinstance(tensor, dict) or tensor.get("name") not in declared_inputs:
                raise DomainError(f"{at}: {model} takes {', '.join(sorted(declared_inputs))}.", path=f"{at}.name")
            _tensor_fits(tensor, declared_inputs[tensor["name"]], batched, at)
            tensors.from_json(tensor["name"], tensor["datatype"], tensor["shape"], tensor.get("data"))
            names.add(tensor["name"])
        missing = sorted(set(declared_inputs) - names)
        if missing and declared_inputs:
            raise DomainError(f"{where}.inputs: {model} also needs {', '.join(missing)}.", path=f"{where}.inputs")
        declared_outputs = {t["name"]: t for t in meta["outputs"]}
        expected = request.get("expected")
        if not isinstance(expected, list) or not expected:
            raise DomainError(
                f"{where}.expected is a list of {{name, data}}: what a good model answers.", path=f"{where}.expected"
            )
        for position, output in enumerate(expected):
            at = f"{where}.expected[{position}]"
            if not isinstance(output, dict) or "data" not in output:
                raise DomainError(f"{at} is {{name, data}}.", path=at)
            if declared_outputs and output.get("name") not in declared_outputs:
                raise DomainError(f"{at}: {model} answers {', '.join(sorted(declared_outputs))}.", path=f"{at}.name")
        tolerance = request.get("tolerance") or {}
        if not isinstance(tolerance, dict) or set(tolerance) - {"abs", "rel"}:
            raise DomainError(f"{where}.tolerance is {{abs, rel}}.", path=f"{where}.tolerance")
        clean.append(
            {
                "name": str(request.get("name") or f"golden {index + 1}")[:100],
                "model": model,
                "version": version,
                "inputs": [{k: t[k] for k in ("name", "datatype", "shape", "data")} for t in inputs],
                "expected": [{"name": o["name"], "data": o["data"]} for o in expected],
                "tolerance": {
                    "abs": _number(tolerance.get("abs", 1e-6), f"{where}.tolerance.abs"),
                    "rel": _number(tolerance.get("rel", 0.0), f"{where}.tolerance.rel"),
                },
            }
        )
    return clean


def plan_digest(*, spec_digest: str, steps: list, gates: dict, golden_requests: list, on_rollback: str) -> str:
    payload = {
        "spec_digest": spec_digest,
        "steps": steps,
        "gates": gates,
        "golden_requests": golden_requests,
        "on_rollback": on_rollback,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def digest_of(rollout) -> str:
    """The digest of what a saved rollout would do now (the driver compares it with the released one)."""
    return plan_digest(
        spec_digest=rollout.candidate_digest,
        steps=[{"traffic": s.traffic, "bake_seconds": s.bake_seconds} for s in rollout.steps.order_by("index")],
        gates=rollout.gates,
        golden_requests=rollout.golden_requests,
        on_rollback=rollout.on_rollback,
    )
