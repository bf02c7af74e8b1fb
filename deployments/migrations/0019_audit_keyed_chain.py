"""The audit chain becomes keyed, and append-only on SQLite too.

key_id names the AUDIT_KEYS key whose HMAC an event's hash is. Events already
written keep a blank key_id and their unkeyed hash: re-hashing them would be
the very rewrite the key is there to forbid. They stay a legacy prefix,
verified the old way, which the first anchor seals (deployments/audit.py).

SQLite gets the triggers PostgreSQL has had since 0002: every DELETE refused,
and every UPDATE but the one on_delete=SET_NULL issues when a user is deleted
(actor_id cleared, nothing else changed). A later migration that makes Django
rebuild this table on SQLite (most AlterField/AddField) drops them with the
old table and must create them again; tests/test_audit.py would notice.
"""

from django.db import migrations, models

# Every column but actor_id, the one Django may clear.
_FIXED_COLUMNS = (
    "id",
    "seq",
    "at",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "environment",
    "before",
    "after",
    "details",
    "request_id",
    "source_ip",
    "prev_hash",
    "hash",
    "key_id",
)

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER deployments_auditevent_no_delete BEFORE DELETE ON deployments_auditevent
    BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only (DELETE refused)');
    END
    """,
    f"""
    CREATE TRIGGER deployments_auditevent_no_update BEFORE UPDATE ON deployments_auditevent
    WHEN NEW.actor_id IS NOT NULL OR {" OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in _FIXED_COLUMNS)}
    BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only (UPDATE refused)');
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS deployments_auditevent_no_delete",
    "DROP TRIGGER IF EXISTS deployments_auditevent_no_update",
]


def _on_sqlite(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            for statement in statements:
                schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("deployments", "0018_config_source_unreadable")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(_on_sqlite(SQLITE_TRIGGERS), _on_sqlite(SQLITE_DROP)),
    ]
