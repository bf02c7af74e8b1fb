"""Migration 0020 turns the repositories already recorded into model lines:
one line per name, revisions numbered in upload order, each deployment told
which revision it runs. Runs the real migration both ways on the test
database (SQLite in the fast tier, PostgreSQL in the full one)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deployments", "0019_audit_keyed_chain")]
AFTER = [("deployments", "0020_model_lines")]


def migrate(targets):
    """Migrate the test database to `targets`; the historical models there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what is applied now
    return executor.loader.project_state(targets).apps


def audit_triggers() -> list[str]:
    """The append-only triggers on the audit log (0002 on PostgreSQL, 0019 on SQLite)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'deployments_auditevent'"
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'deployments_auditevent'::regclass AND NOT tgisinternal"
            )
        return sorted(name for (name,) in cursor.fetchall())


def pending_migrations() -> list:
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


@pytest.fixture
def old_schema(transactional_db):
    """The database at 0019, before model lines; back at the latest migration
    afterwards, whatever the test did (before the test's flush)."""
    triggers = audit_triggers()
    assert triggers, "the audit log's append-only triggers exist to begin with"
    apps = migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert pending_migrations() == []
    # 0020 rebuilds tables on SQLite, never the audit log's: its triggers survive both ways.
    assert audit_triggers() == triggers


def repository(apps, *, name, digest, uploaded_at, by, **fields):
    ModelRepository = apps.get_model("deployments", "ModelRepository")
    row = ModelRepository.objects.create(
        name=name,
        digest=digest,
        status="valid",
        source="upload",
        source_name=f"{name}.zip",
        storage_dir=f"repositories/{digest[:2]}/{digest}",
        file_count=3,
        total_bytes=1234,
        uploaded_by=by,
        **fields,
    )
    # uploaded_at is auto_now_add: set afterwards, as it was recorded then.
    ModelRepository.objects.filter(pk=row.pk).update(uploaded_at=uploaded_at)
    return row.pk


def test_existing_repositories_become_numbered_revisions_of_one_line_per_name(old_schema):
    apps = old_schema
    User = apps.get_model(settings.AUTH_USER_MODEL)
    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")
    ModelRepository = apps.get_model("deployments", "ModelRepository")
    assert "line" not in {f.name for f in ModelRepository._meta.get_fields()}  # the old schema indeed

    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    # Created first (lower id) but uploaded later: the upload time decides the order.
    bidaf_later = repository(apps, name="bidaf", digest="b" * 64, uploaded_at=monday + timedelta(days=2), by=bob)
    bidaf_first = repository(apps, name="bidaf", digest="a" * 64, uploaded_at=monday, by=alice)
    other = repository(apps, name="other", digest="c" * 64, uploaded_at=monday + timedelta(days=1), by=bob)
    TritonModel = apps.get_model("deployments", "TritonModel")
    TritonModel.objects.create(repository_id=bidaf_later, name="bidaf", versions=[1], config_source="explicit")
    environment = apps.get_model("deployments", "Environment").objects.create(name="mig-dev")
    target = apps.get_model("deployments", "Target").objects.create(
        name="mig-fake", kind="fake", environment=environment
    )
    Deployment = apps.get_model("deployments", "Deployment")
    deployment = Deployment.objects.create(
        name="reader",
        repository_id=bidaf_later,
        repository_name="bidaf",
        repository_digest="b" * 64,
        target=target,
        spec_digest="d" * 64,
        status="healthy",
        scoring_uri="fake://mig-fake/reader",
        created_by=bob,
    )
    before_repositories = {
        row["id"]: row
        for row in ModelRepository.objects.values(
            "id", "name", "digest", "storage_dir", "file_count", "total_bytes", "uploaded_at", "uploaded_by_id"
        )
    }
    before_deployment = Deployment.objects.values().get(pk=deployment.pk)
    AuditEvent = apps.get_model("deployments", "AuditEvent")
    audit_rows = AuditEvent.objects.count()

    apps = migrate(AFTER)

    ModelLine = apps.get_model("deployments", "ModelLine")
    ModelRepository = apps.get_model("deployments", "ModelRepository")
    Deployment = apps.get_model("deployments", "Deployment")
    lines = {line.name: line for line in ModelLine.objects.all()}
    assert sorted(lines) == ["bidaf", "other"]
    assert (lines["bidaf"].last_revision, lines["other"].last_revision) == (2, 1)
    # A line began with its first upload, by whoever made it.
    assert lines["bidaf"].created_at == monday
    assert lines["bidaf"].created_by_id == alice.pk
    assert lines["other"].created_by_id == bob.pk

    revisions = {row.pk: (row.line.name, row.revision) for row in ModelRepository.objects.select_related("line")}
    assert revisions == {bidaf_first: ("bidaf", 1), bidaf_later: ("bidaf", 2), other: ("other", 1)}

    # Nothing else about a repository moved: same digest, same files in storage.
    after_repositories = {
        row["id"]: row
        for row in ModelRepository.objects.values(
            "id", "name", "digest", "storage_dir", "file_count", "total_bytes", "uploaded_at", "uploaded_by_id"
        )
    }
    assert after_repositories == before_repositories
    assert list(apps.get_model("deployments", "TritonModel").objects.values_list("repository_id", "name")) == [
        (bidaf_later, "bidaf")
    ]

    after_deployment = Deployment.objects.values().get(pk=deployment.pk)
    assert after_deployment.pop("repository_revision") == 2
    assert after_deployment == before_deployment  # every other field as it was
    # The data migration writes no audit event (the log is append-only, and this is no one's action).
    assert apps.get_model("deployments", "AuditEvent").objects.count() == audit_rows


def test_the_migration_reverses_to_names_only(old_schema):
    """Back to 0019 from lines holding distinct contents: the rows keep their names and digests."""
    apps = old_schema
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    first = repository(apps, name="bidaf", digest="a" * 64, uploaded_at=monday, by=None)
    second = repository(apps, name="bidaf", digest="b" * 64, uploaded_at=monday + timedelta(hours=1), by=None)
    migrate(AFTER)

    apps = migrate(BEFORE)

    rows = apps.get_model("deployments", "ModelRepository").objects.order_by("uploaded_at")
    assert list(rows.values_list("pk", "name", "digest")) == [(first, "bidaf", "a" * 64), (second, "bidaf", "b" * 64)]
