from pathlib import Path

from django.conf import settings
from django.db import models

from deployments import policy
from deployments.model_repository.version_policy import served_versions


class ModelRepositoryQuerySet(models.QuerySet):
    def visible_to(self, user):
        # Repositories are shared by the whole team (anyone with a role
        # anywhere); per-environment visibility applies to what is deployed.
        return self if policy.can_somewhere(user, "deployments.view_modelrepository") else self.none()


class ModelRepository(models.Model):
    """A Triton model repository, unpacked into managed storage and validated."""

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        SERVER_PATH = "server_path", "Server path"
        # A revision made from a config search's recommendation.
        CONFIG_SEARCH = "config_search", "Config search"

    # The line this is a revision of; `name` is the line's, copied.
    line = models.ForeignKey("deployments.ModelLine", on_delete=models.PROTECT, related_name="revisions")
    revision = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    # SHA-256 over the normalised tree (layout.content_digest): one revision per
    # content in a line. Lines holding the same content share its files.
    digest = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    source_name = models.CharField(max_length=500, help_text="the archive's file name or the server path")
    found_at = models.CharField(max_length=300, blank=True, help_text="where the repository lay inside the source")
    storage_dir = models.CharField(max_length=100, help_text="relative to STORAGE_ROOT")
    file_count = models.PositiveIntegerField()
    total_bytes = models.PositiveBigIntegerField()
    findings = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    objects = ModelRepositoryQuerySet.as_manager()

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        verbose_name_plural = "model repositories"
        constraints = [
            models.UniqueConstraint(fields=["line", "revision"], name="repository_revision_unique_per_line"),
            models.UniqueConstraint(fields=["line", "digest"], name="repository_content_unique_per_line"),
        ]

    def __str__(self):
        return f"{self.name} r{self.revision} ({self.short_digest})"

    @property
    def label(self) -> str:
        """How people name a revision: `bidaf r2`."""
        return f"{self.name} r{self.revision}"

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    @property
    def path(self) -> Path:
        return Path(settings.STORAGE_ROOT) / self.storage_dir

    @property
    def errors(self) -> list[dict]:
        return [f for f in self.findings if f["severity"] == "error"]

    @property
    def warnings(self) -> list[dict]:
        return [f for f in self.findings if f["severity"] == "warning"]


class TritonModel(models.Model):
    """One model directory of a repository, as validation read it."""

    class ConfigSource(models.TextChoices):
        EXPLICIT = "explicit", "config.pbtxt"
        AUTO_COMPLETE = "auto-complete", "auto-complete"
        # A config.pbtxt that could not be parsed: what it declares is not known.
        UNREADABLE = "unreadable", "config.pbtxt, unreadable"

    repository = models.ForeignKey(ModelRepository, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    backend = models.CharField(max_length=50, blank=True)
    platform = models.CharField(max_length=50, blank=True)
    max_batch_size = models.IntegerField(default=0)
    versions = models.JSONField(default=list)
    inputs = models.JSONField(default=list)
    outputs = models.JSONField(default=list)
    config_source = models.CharField(max_length=16, choices=ConfigSource.choices)
    config_text = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "name"], name="triton_model_unique_per_repository")
        ]

    def __str__(self):
        return self.name

    @property
    def served_versions(self) -> list[int]:
        """The versions Triton loads (what health checks expect to be ready)."""
        return served_versions(
            self.versions, self.config_text, config_known=self.config_source != self.ConfigSource.UNREADABLE
        )
