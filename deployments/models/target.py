from django.db import models


class Target(models.Model):
    """Where deployments run: a local Triton, or an Azure ML workspace's compute."""

    class Kind(models.TextChoices):
        LOCAL = "local", "Local Triton"
        AZUREML_V1_AKS = "azureml_v1_aks", "Azure ML v1 (AKS)"
        AZUREML_V2_KUBERNETES = "azureml_v2_kubernetes", "Azure ML v2 (Kubernetes)"
        AZUREML_V2_MANAGED = "azureml_v2_managed", "Azure ML v2 (managed)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    environment = models.ForeignKey("deployments.Environment", on_delete=models.PROTECT, related_name="targets")
    # Non-secret, kind-specific settings (workspace coordinates, compute name,
    # default resources). Secrets never live here.
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__position", "name"]

    def __str__(self):
        return self.name
