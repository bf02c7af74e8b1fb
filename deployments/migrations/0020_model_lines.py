"""Repositories become numbered revisions of model lines (one line per name,
revisions in upload order), and Azure registrations get a row of their own."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def lines_from_names(apps, schema_editor):
    ModelLine = apps.get_model("deployments", "ModelLine")
    ModelRepository = apps.get_model("deployments", "ModelRepository")
    lines = {}
    for repository in ModelRepository.objects.order_by("uploaded_at", "id"):
        line = lines.get(repository.name)
        if line is None:
            line = lines[repository.name] = ModelLine.objects.create(
                name=repository.name, created_by_id=repository.uploaded_by_id
            )
            # The line began with its first upload, not with this migration.
            ModelLine.objects.filter(pk=line.pk).update(created_at=repository.uploaded_at)
        line.last_revision += 1
        line.save(update_fields=["last_revision"])
        repository.line, repository.revision = line, line.last_revision
        repository.save(update_fields=["line", "revision"])
    Deployment = apps.get_model("deployments", "Deployment")
    for deployment in Deployment.objects.exclude(repository=None).select_related("repository"):
        deployment.repository_revision = deployment.repository.revision
        deployment.save(update_fields=["repository_revision"])


def names_only(apps, schema_editor):
    ModelRepository = apps.get_model("deployments", "ModelRepository")
    seen = set()
    for digest in ModelRepository.objects.order_by("uploaded_at", "id").values_list("digest", flat=True):
        if digest in seen:
            raise RuntimeError("Two lines hold the same content: the old schema allows one row per digest.")
        seen.add(digest)


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0019_audit_keyed_chain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Registration",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("workspace", models.CharField(max_length=400)),
                (
                    "asset_type",
                    models.CharField(
                        choices=[("multi", "SDK v1 model (framework MULTI)"), ("triton_model", "SDK v2 triton_model")],
                        max_length=16,
                    ),
                ),
                ("repository_digest", models.CharField(max_length=64)),
                ("model_name", models.CharField(max_length=255)),
                ("model_version", models.CharField(max_length=64)),
                ("registered_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["workspace", "model_name", "-registered_at"],
            },
        ),
        migrations.AddField(
            model_name="modelrepository",
            name="revision",
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="modelrepository",
            name="digest",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.CreateModel(
            name="ModelLine",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("last_revision", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="modelrepository",
            name="line",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="revisions",
                to="deployments.modelline",
            ),
        ),
        migrations.AddField(
            model_name="deployment",
            name="repository_revision",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(lines_from_names, names_only),
        migrations.AlterField(
            model_name="modelrepository",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="revisions", to="deployments.modelline"
            ),
        ),
        migrations.AlterField(
            model_name="modelrepository",
            name="revision",
            field=models.PositiveIntegerField(),
        ),
        migrations.AddConstraint(
            model_name="modelrepository",
            constraint=models.UniqueConstraint(fields=("line", "revision"), name="repository_revision_unique_per_line"),
        ),
        migrations.AddConstraint(
            model_name="modelrepository",
            constraint=models.UniqueConstraint(fields=("line", "digest"), name="repository_content_unique_per_line"),
        ),
        migrations.AddField(
            model_name="registration",
            name="repository",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="registrations",
                to="deployments.modelrepository",
            ),
        ),
        migrations.AddField(
            model_name="registration",
            name="target",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="registrations",
                to="deployments.target",
            ),
        ),
        migrations.AddConstraint(
            model_name="registration",
            constraint=models.UniqueConstraint(
                fields=("workspace", "asset_type", "repository_digest"), name="registration_one_per_content"
            ),
        ),
    ]
