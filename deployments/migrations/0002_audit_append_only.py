"""On PostgreSQL, make the audit table append-only for every client, not just the ORM.

The one UPDATE allowed is the one Django's on_delete=SET_NULL issues when a
user is deleted: clearing actor_id and nothing else. The hash chain does not
cover actor_id, so the log still verifies afterwards.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION deployments_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER deployments_auditevent_append_only
    BEFORE UPDATE OR DELETE ON deployments_auditevent
    FOR EACH ROW EXECUTE FUNCTION deployments_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS deployments_auditevent_append_only ON deployments_auditevent;
DROP FUNCTION IF EXISTS deployments_auditevent_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
