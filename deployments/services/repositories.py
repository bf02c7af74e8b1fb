"""Recording, and deleting, model repositories."""

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath

from django.conf import settings
from django.db import IntegrityError, transaction

from deployments.audit import audit
from deployments.errors import DomainError, WrongState
from deployments.model_repository import intake
from deployments.model_repository.errors import IntakeError
from deployments.models import Deployment, ModelLine, ModelRepository, TritonModel
from deployments.services.permissions import require

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")


@dataclass(frozen=True)
class IntakeOutcome:
    repository: ModelRepository
    created: bool  # False: identical content was already recorded


def _clean_name(name: str, fallback: str) -> str:
    # A name taken from a long file or folder name is cut, not refused: the
    # user never typed it.
    name = (name or "").strip() or fallback[:100].strip()
    if not name:
        raise DomainError("Give the repository a name.", path="name")
    if len(name) > 100:
        raise DomainError("Repository names are at most 100 characters.", path="name")
    return name


def _name_from_filename(filename: str) -> str:
    base = PurePath(filename or "").name
    for suffix in _ARCHIVE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def _reject(*, actor, name: str, source: str, source_name: str, error: IntakeError, path: str):
    with transaction.atomic():
        audit(
            action="repository.rejected",
            actor=actor,
            object_type="deployments.modelrepository",
            object_repr=name[:200],
            details={"source": source, "source_name": source_name, "reason": error.message, "entry": error.entry},
        )
    raise DomainError(f"Rejected, nothing was saved: {error}", code="rejected", path=path)


def _line_for(name: str, actor) -> ModelLine:
    """The line of that name, locked: revision numbers are handed out one at a time."""
    line, _ = ModelLine.objects.get_or_create(name=name, defaults={"created_by": actor})
    return ModelLine.objects.select_for_update().get(pk=line.pk)


def _existing(name: str, digest: str) -> ModelRepository | None:
    return ModelRepository.objects.filter(line__name=name, digest=digest).first()


def _record(*, staged: intake.StagedRepository, name: str, source: str, source_name: str, actor) -> IntakeOutcome:
    existing = _existing(name, staged.digest)
    if existing is not None:
        staged.discard()
        return IntakeOutcome(existing, created=False)
    # Identical content under another name shares its files: install() finds
    # them in place and leaves them, and only a new folder is ours to undo.
    installed = staged.install()
    try:
        with transaction.atomic():
            line = _line_for(name, actor)
            line.last_revision += 1
            line.save(update_fields=["last_revision"])
            revision = line.last_revision
            repository = ModelRepository.objects.create(
                line=line,
                revision=revision,
                name=name,
                digest=staged.digest,
                status=ModelRepository.Status.VALID if staged.report.valid else ModelRepository.Status.INVALID,
                source=source,
                source_name=source_name[:500],
                found_at=staged.found_at,
                storage_dir=staged.final_relative,
                file_count=staged.file_count,
                total_bytes=staged.total_bytes,
                findings=[finding.as_dict() for finding in staged.report.findings],
                uploaded_by=actor,
            )
            TritonModel.objects.bulk_create(
                TritonModel(
                    repository=repository,
                    name=model.name,
                    backend=model.backend,
                    platform=model.platform,
                    max_batch_size=model.max_batch_size,
                    versions=model.versions,
                    inputs=[tensor.as_dict() for tensor in model.inputs],
                    outputs=[tensor.as_dict() for tensor in model.outputs],
                    config_source=model.config_source,
                    config_text=model.config_text,
                    warnings=model.warnings,
                )
                for model in staged.report.models
            )
            audit(
                action="repository.uploaded",
                actor=actor,
                obj=repository,
                after={
                    "name": name,
                    "revision": revision,
                    "digest": staged.digest,
                    "status": repository.status,
                    "models": [model.name for model in staged.report.models],
                },
                details={"source": source, "source_name": source_name, "errors": len(repository.errors)},
            )
    except IntegrityError:
        # The same content was recorded in this line concurrently: theirs
        # stands, and the files (identical, at the same digest path) are shared.
        existing = _existing(name, staged.digest)
        if existing is None:
            raise
        return IntakeOutcome(existing, created=False)
    except BaseException:
        if installed and not ModelRepository.objects.filter(digest=staged.digest).exists():
            intake.remove_installed(staged.final_relative)
        raise
    return IntakeOutcome(repository, created=True)


def repository_upload(*, name: str, archive, filename: str, actor) -> IntakeOutcome:
    """Record an uploaded .zip / .tar.gz. Unsafe or unreadable: rejected whole."""
    require(actor, "deployments.add_modelrepository", "Uploading a repository")
    name = _clean_name(name, _name_from_filename(filename))
    if archive is None:
        raise DomainError("Choose a .zip or .tar.gz archive to upload.", path="archive")
    size = getattr(archive, "size", None)
    if size is not None and size > settings.REPOSITORY_MAX_UPLOAD_BYTES:
        error = IntakeError(f"{size:,} bytes is over the {settings.REPOSITORY_MAX_UPLOAD_BYTES:,}-byte upload limit")
        _reject(actor=actor, name=name, source="upload", source_name=filename, error=error, path="archive")
    try:
        staged = intake.stage_archive(archive)
    except IntakeError as error:
        _reject(actor=actor, name=name, source="upload", source_name=filename, error=error, path="archive")
    return _record(staged=staged, name=name, source=ModelRepository.Source.UPLOAD, source_name=filename, actor=actor)


def repository_import(*, name: str, path: str, actor) -> IntakeOutcome:
    """Record a directory on the server, under one of REPOSITORY_IMPORT_ROOTS."""
    require(actor, "deployments.add_modelrepository", "Importing a repository")
    name = _clean_name(name, Path(path or "").name)
    try:
        source = intake.resolve_import_path(path)
        staged = intake.stage_directory(source)
    except IntakeError as error:
        _reject(actor=actor, name=name, source="server_path", source_name=path, error=error, path="path")
    return _record(
        staged=staged, name=name, source=ModelRepository.Source.SERVER_PATH, source_name=str(source), actor=actor
    )


def repository_load_example(*, path: Path, actor) -> IntakeOutcome:
    """Record one of the bundled examples (a trusted path, so no import-root check)."""
    require(actor, "deployments.add_modelrepository", "Loading an example")
    staged = intake.stage_directory(path)
    return _record(
        staged=staged,
        name=f"example: {path.name}",
        source=ModelRepository.Source.SERVER_PATH,
        source_name=str(path),
        actor=actor,
    )


def repository_revise_config(
    *, repository: ModelRepository, model: str, config_text: str, source_name: str, actor
) -> IntakeOutcome:
    """The line's next revision: `repository` with one model's config.pbtxt
    replaced, validated as any upload is (a config search's recommendation)."""
    require(actor, "deployments.add_modelrepository", "Recording a revision")
    if not repository.models.filter(name=model).exists():
        raise DomainError(f"{repository.label} has no model {model!r}.", path="model")
    work = intake.storage_dir("scratch") / f"revise-{uuid.uuid4().hex}"
    try:
        shutil.copytree(repository.path, work, symlinks=True)
        (work / model / "config.pbtxt").write_text(config_text)
        try:
            staged = intake.stage_directory(work)
        except IntakeError as error:
            _reject(
                actor=actor, name=repository.name, source="config_search", source_name=source_name, error=error, path=""
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _record(
        staged=staged,
        name=repository.line.name,
        source=ModelRepository.Source.CONFIG_SEARCH,
        source_name=source_name,
        actor=actor,
    )


def repository_delete(*, repository: ModelRepository, actor) -> None:
    require(actor, "deployments.delete_modelrepository", "Deleting a repository")
    with transaction.atomic():
        locked = ModelRepository.objects.select_for_update().filter(pk=repository.pk).first()
        if locked is None:
            raise WrongState("This repository was already deleted.")
        in_use = list(locked.deployments.exclude(status__in=Deployment.TERMINAL).values_list("name", flat=True)[:5])
        if in_use:
            raise WrongState(f"In use by deployment(s) {', '.join(in_use)}: delete them first.")
        snapshot = {"name": locked.name, "revision": locked.revision, "digest": locked.digest, "status": locked.status}
        audit(action="repository.deleted", actor=actor, obj=locked, before=snapshot)
        relative = locked.storage_dir
        locked.delete()
        # Files go only once the row is gone for good.
        transaction.on_commit(lambda: _remove_unless_shared(relative))


def _remove_unless_shared(relative: str) -> None:
    # Another line holding the same content keeps the shared files; checked
    # after commit, so an upload of it that committed meanwhile counts too.
    if not ModelRepository.objects.filter(storage_dir=relative).exists():
        intake.remove_installed(relative)
