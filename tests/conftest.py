from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from deployments import roles
from deployments.services.api_tokens import api_token_create
from tests import processes

PASSWORD = "a-long-test-password-42"


def pytest_collection_modifyitems(items):
    """schemathesis names each operation's test test_...[GET /path] but gives
    all of them one node id, and pytest-xdist, which hands tests to its
    workers by node id, would run one of them: each gets its name as its id."""
    for item in items:
        if "[" in item.name and not item.nodeid.endswith("]"):
            item._id = item.parent.id.child(item.name)


def make_user(django_user_model, username: str, *role_names: str):
    user = django_user_model.objects.create_user(username, password=PASSWORD)
    user.groups.add(*Group.objects.filter(name__in=role_names))
    return user


@pytest.fixture
def viewer(django_user_model):
    return make_user(django_user_model, "viewer", roles.VIEWER)


@pytest.fixture
def outsider(django_user_model):
    """Signed in, but holds no role at all."""
    return make_user(django_user_model, "outsider")


@pytest.fixture
def requester(django_user_model):
    """Asks for changes that others must approve."""
    user = make_user(django_user_model, "requester", "deployer")
    user.email = "requester@example.com"
    user.save()
    return user


@pytest.fixture
def approver(django_user_model):
    user = make_user(django_user_model, "approver", "approver")
    user.email = "approver@example.com"
    user.save()
    return user


@pytest.fixture
def deployer(django_user_model):
    return make_user(django_user_model, "deployer", roles.DEPLOYER)


@pytest.fixture
def repository(admin):
    """The add_sub example, recorded by the admin (a file may define its own)."""
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES

    return repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository


@pytest.fixture
def admin(django_user_model):
    user = make_user(django_user_model, "boss", roles.ADMIN)
    user.is_superuser = user.is_staff = True
    user.save()
    return user


@pytest.fixture
def token_for():
    """token_for(user) -> the Authorization header value for a fresh API token."""

    def make(user):
        _, key = api_token_create(user=user, name="tests")
        return f"Token {key}"

    return make


@pytest.fixture(autouse=True)
def fresh_cache():
    """The cache (token-failure counts, repository diffs) outlives a test otherwise."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path_factory):
    """Each test writes into its own storage root, so file assertions are exact."""
    settings.STORAGE_ROOT = tmp_path_factory.mktemp("storage")
    yield settings.STORAGE_ROOT
    # A local deployment's endpoint router, if the test started one.
    if (settings.STORAGE_ROOT / "endpoints").exists():
        from workers.targets.local import router

        router.stop()


@pytest.fixture(autouse=True)
def audit_anchors(settings, tmp_path_factory):
    """Each test anchors the audit chain in its own folder: an anchor outlives
    the test's database rows, and would fail the next test's chain otherwise."""
    settings.AUDIT_ANCHOR_DIR = tmp_path_factory.mktemp("audit-anchors")
    return settings.AUDIT_ANCHOR_DIR


@pytest.fixture(scope="session", autouse=True)
def flush_past_sqlite_audit_triggers():
    """Transactional tests end with a flush: on PostgreSQL a TRUNCATE, which
    row triggers do not see; on SQLite a DELETE, which the audit log's
    append-only triggers refuse. For the flush only, drop them and put them back."""
    from django.db import connection

    if connection.vendor != "sqlite":
        yield
        return
    DatabaseOperations = type(connection.ops)  # noqa: N806 (the class, patched for the session)
    plain = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, **kwargs):
        statements = plain(self, style, tables, **kwargs)
        if "deployments_auditevent" not in tables:
            return statements
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'deployments_auditevent'"
            )
            triggers = cursor.fetchall()
        return [f'DROP TRIGGER "{name}"' for name, _ in triggers] + statements + [sql for _, sql in triggers]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = plain


@pytest.fixture
def celery_worker(tmp_path, settings):
    """A real Celery worker consuming from the real Redis, on the test database
    and this test's storage root. Needs transactional tests (django_db(transaction=True))."""
    import redis

    # The tests own this Redis database index: start from an empty queue.
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = processes.child_env(DATABASE_URL=processes.test_database_url(), STORAGE_ROOT=str(settings.STORAGE_ROOT))
    log = tmp_path / "worker.log"
    worker = processes.start(
        processes.celery_worker("test-worker"),
        env=env,
        log=log,
    )
    yield worker
    processes.stop(worker)
    print(log.read_text()[-5000:])


@pytest.fixture
def cleanup():
    """cleanup(deployment): stop its local servers when the test ends, whatever happens."""
    from workers.targets.local import adapter as local
    from workers.targets.local import router

    started = []
    yield started.append
    if started:
        # The router first: a Triton it still holds connections to waits on them before it stops.
        router.stop()
    for deployment in started:
        local.stop_servers(deployment.pk)


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory):
    """After the run, nothing a test started may still run: every server of a
    deployment, sandbox or bridge names its folder under pytest's base temp."""
    from workers.targets.local import processes as local_processes

    base = tmp_path_factory.getbasetemp()
    yield
    left = local_processes.processes_mentioning(f"{base}/")
    said = [_command_line(p.pid) for p in left]
    local_processes.stop_all(left, grace=5)
    assert left == [], f"{len(left)} process(es) outlived the tests: {said}"


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")[-400:]
    except OSError:
        return f"pid {pid} (gone)"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    """The fast tier signs users in hundreds of times: there, a cheap hasher.
    The full tier keeps the real one (its servers run with default settings)."""
    from tests.services import FAST_TIER

    if FAST_TIER:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
