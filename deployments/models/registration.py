from django.db import models


class Registration(models.Model):
    """A repository's content registered as a model in an Azure ML workspace:
    that workspace's `name:version`, reused for the same digest."""

    class AssetType(models.TextChoices):
        # SDK v1 `Model.register(model_framework=MULTI)`; SDK v2 `Model(type="triton_model")`.
        MULTI = "multi", "SDK v1 model (framework MULTI)"
        TRITON_MODEL = "triton_model", "SDK v2 triton_model"

    # subscription/resource group/workspace: several targets may share one.
    workspace = models.CharField(max_length=400)
    asset_type = models.CharField(max_length=16, choices=AssetType.choices)
    repository_digest = models.CharField(max_length=64)
    model_name = models.CharField(max_length=255)
    model_version = models.CharField(max_length=64)
    # The revision that was deployed when it was registered (kept if it goes).
    repository = models.ForeignKey(
        "deployments.ModelRepository", null=True, blank=True, on_delete=models.SET_NULL, related_name="registrations"
    )
    target = models.ForeignKey(
        "deployments.Target", null=True, blank=True, on_delete=models.SET_NULL, related_name="registrations"
    )
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace", "model_name", "-registered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "asset_type", "repository_digest"], name="registration_one_per_content"
            ),
        ]

    def __str__(self):
        return f"{self.model_name}:{self.model_version}"

    @property
    def label(self) -> str:
        return f"{self.model_name}:{self.model_version}"
