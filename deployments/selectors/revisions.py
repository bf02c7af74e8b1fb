"""What differs between two revisions of a repository: the models and
versions added, removed or changed, each model's config.pbtxt as a text
diff, and the tensors whose name, type or shape changed. Repositories are
content-addressed and immutable, so a diff is computed once and cached."""

import difflib
import hashlib
from pathlib import Path

from django.core.cache import cache

from deployments.models import ModelRepository


def _version_fingerprints(repository: ModelRepository) -> dict[tuple[str, str], str]:
    """(model, version) -> SHA-256 over the version's files and the model's config."""
    root = Path(repository.path)
    prints = {}
    for model in repository.models.all():
        for version in model.versions:
            digest = hashlib.sha256(model.config_text.encode())
            folder = root / model.name / str(version)
            for file in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
                digest.update(str(file.relative_to(folder)).encode())
                with file.open("rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(chunk)
            prints[(model.name, str(version))] = digest.hexdigest()
    return prints


def _tensor(tensor: dict) -> str:
    return f"{tensor.get('datatype', '?')} {tensor.get('dims', [])}"


def _tensor_changes(old_model, new_model) -> list[str]:
    """'input INPUT0: FP32 [4] → FP16 [4]', 'output X added', … for one model."""
    lines = []
    for side in ("inputs", "outputs"):
        label = side[:-1]
        before = {t["name"]: t for t in getattr(old_model, side)}
        after = {t["name"]: t for t in getattr(new_model, side)}
        for name in sorted(after.keys() - before.keys()):
            lines.append(f"{label} {name} added: {_tensor(after[name])}")
        for name in sorted(before.keys() - after.keys()):
            lines.append(f"{label} {name} removed (was {_tensor(before[name])})")
        for name in sorted(before.keys() & after.keys()):
            if _tensor(before[name]) != _tensor(after[name]):
                lines.append(f"{label} {name}: {_tensor(before[name])} → {_tensor(after[name])}")
    if old_model.max_batch_size != new_model.max_batch_size:
        lines.append(f"max_batch_size {old_model.max_batch_size} → {new_model.max_batch_size}")
    return lines


def _config_diff(old_model, new_model) -> str:
    return "".join(
        difflib.unified_diff(
            old_model.config_text.splitlines(keepends=True),
            new_model.config_text.splitlines(keepends=True),
            fromfile=f"a/{old_model.name}/config.pbtxt",
            tofile=f"b/{new_model.name}/config.pbtxt",
        )
    )


def revision_diff(old: ModelRepository, new: ModelRepository) -> dict | None:
    """{"added", "removed", "changed": ["model vN"], "unchanged": n,
    "models": [{"name", "config_diff", "tensors"}] for models in both whose
    config or tensors differ}; None when both hold the same content."""
    if old.digest == new.digest:
        return None
    key = f"revision-diff:v2:{old.digest}:{new.digest}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    before, after = _version_fingerprints(old), _version_fingerprints(new)
    label = lambda pair: f"{pair[0]} v{pair[1]}"  # noqa: E731
    old_models = {m.name: m for m in old.models.all()}
    new_models = {m.name: m for m in new.models.all()}
    models = []
    for name in sorted(old_models.keys() & new_models.keys()):
        config = _config_diff(old_models[name], new_models[name])
        tensors = _tensor_changes(old_models[name], new_models[name])
        if config or tensors:
            models.append({"name": name, "config_diff": config, "tensors": tensors})
    diff = {
        "added": sorted(label(p) for p in after.keys() - before.keys()),
        "removed": sorted(label(p) for p in before.keys() - after.keys()),
        "changed": sorted(label(p) for p in before.keys() & after.keys() if before[p] != after[p]),
        "unchanged": len([p for p in before.keys() & after.keys() if before[p] == after[p]]),
        "models_added": sorted(new_models.keys() - old_models.keys()),
        "models_removed": sorted(old_models.keys() - new_models.keys()),
        "models": models,
    }
    cache.set(key, diff, None)
    return diff


def digest_diff(old_digest: str, new_digest: str) -> dict | None:
    """The diff between two contents named by digest (an approval request
    keeps only digests); None when they are the same, and a note when either
    is no longer stored."""
    if not old_digest or old_digest == new_digest:
        return None
    old = ModelRepository.objects.filter(digest=old_digest).first()
    new = ModelRepository.objects.filter(digest=new_digest).first()
    if old is None or new is None:
        return {"unavailable": "One of the two repositories was deleted; only their digests differ."}
    return revision_diff(old, new)
