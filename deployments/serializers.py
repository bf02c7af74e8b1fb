"""JSON shapes of the API (API.md), shared by every endpoint that returns them."""

from deployments.models import ModelRepository


def repository_json(repository: ModelRepository) -> dict:
    return {
        "id": repository.pk,
        "name": repository.name,
        "digest": repository.digest,
        "status": repository.status,
        "source": repository.source,
        "source_name": repository.source_name,
        "file_count": repository.file_count,
        "total_bytes": repository.total_bytes,
        "uploaded_by": repository.uploaded_by.get_username() if repository.uploaded_by else None,
        "uploaded_at": repository.uploaded_at.isoformat(),
        "findings": repository.findings,
        "warnings": [f["message"] for f in repository.warnings],
        "models": [
            {
                "name": model.name,
                "backend": model.backend,
                "platform": model.platform,
                "max_batch_size": model.max_batch_size,
                "versions": model.versions,
                "inputs": model.inputs,
                "outputs": model.outputs,
                "config": model.config_source,
                "warnings": model.warnings,
            }
            for model in repository.models.all()
        ],
    }
