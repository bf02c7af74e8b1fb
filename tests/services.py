"""Finds the real services the tests run against, before Django reads settings.

Loaded as a pytest plugin (`-p tests.services` in pyproject.toml) because
pytest-django imports dashboard.settings before any conftest runs, and the
settings take DATABASE_URL and REDIS_URL from the environment.

- PostgreSQL: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/triton_dashboard;
  pytest-django creates and drops test_triton_dashboard beside it).
- Redis: TEST_REDIS_URL (default redis://127.0.0.1:6379/15, a database index
  the tests may flush).
- Chromium: CHROMIUM (default /usr/bin/chromium, Debian's package).

Outside CI a missing service skips the tests marked as needing it (and the
others run on SQLite and the embedded SQLite broker). Under CI=true a missing
service fails the run: a green CI must mean every test ran.

TEST_TIER=fast (`make test-fast`) is the quick tier: SQLite, the SQLite
broker, and only the tests that need none of PostgreSQL, Redis, Chromium, a
real Triton or the Azure SDKs (the others are deselected, not skipped).
"""

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FAST_TIER = os.environ.get("TEST_TIER", "") == "fast"
# What the fast tier leaves to `make test`.
SLOW_MARKERS = ("postgres", "redis", "browser", "triton", "azure", "server")
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/triton_dashboard")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# `make test` runs the tests in two pytest-xdist workers, gw0 and gw1: each
# one's own PostgreSQL test database (pytest-django suffixes its name), Redis
# database index (TEST_REDIS_URL's, counting down: 15, then 14), folder under
# VAR_DIR (mkdtemp below, per process) and share of the local endpoint ports.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
if WORKER:
    _redis = urlsplit(REDIS_URL)
    REDIS_URL = urlunsplit(_redis._replace(path=f"/{int(_redis.path.strip('/') or 0) - WORKER}"))


def _postgres_problem() -> str | None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    # The test database does not exist yet; ask the maintenance database.
    probe_url = urlunsplit(parts._replace(path="/postgres"))
    try:
        psycopg.connect(probe_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {parts.hostname}:{parts.port or 5432} is unreachable ({exc})"
    return None


def _redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} is unreachable ({exc})"
    return None


def _browser_problem() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


PROBLEMS = (
    {}
    if FAST_TIER
    else {
        "postgres": _postgres_problem(),
        "redis": _redis_problem(),
        "browser": _browser_problem(),
    }
)

# Everything the dashboard writes during tests goes to a throw-away folder.
VAR_DIR = Path(tempfile.mkdtemp(prefix="triton-dashboard-tests-"))
os.environ["VAR_DIR"] = str(VAR_DIR)
# azureml-core fixes its discovery cache under ~/.azureml when first imported:
# tests (and the workers they start) get a HOME of their own, never the developer's.
os.environ["HOME"] = str(VAR_DIR / "home")
(VAR_DIR / "home" / ".azureml").mkdir(parents=True)
os.environ["AZUREML_LOG_DEPRECATION_WARNING_ENABLED"] = "False"
os.environ["DASHBOARD_ENV"] = "local"
# The in-memory "fake" kind of target is offered to the tests.
os.environ["TARGET_TEST_KINDS"] = "true"
if "PYTEST_XDIST_WORKER" in os.environ and "LOCAL_ENDPOINT_PORTS" not in os.environ:
    # Endpoint ports are picked as the lowest free one: two workers must not pick the same at once.
    os.environ["LOCAL_ENDPOINT_PORTS"] = f"{20000 + 500 * WORKER}-{20499 + 500 * WORKER}"
for name in ("SECRET_KEY", "ENCRYPTION_KEYS", "AUDIT_KEYS", "ALLOWED_HOSTS", "DEBUG"):
    os.environ.pop(name, None)
if not FAST_TIER and PROBLEMS["postgres"] is None:
    os.environ["DATABASE_URL"] = DATABASE_URL
else:
    os.environ.pop("DATABASE_URL", None)
if not FAST_TIER and PROBLEMS["redis"] is None:
    os.environ["REDIS_URL"] = REDIS_URL
else:
    os.environ.pop("REDIS_URL", None)


def pytest_configure(config):
    missing = {name: problem for name, problem in PROBLEMS.items() if problem}
    if IN_CI and missing:
        pytest.exit("CI=true and a service the tests need is missing: " + "; ".join(missing.values()), returncode=3)


def pytest_collection_modifyitems(config, items):
    if FAST_TIER:
        slow = [item for item in items if any(item.get_closest_marker(name) for name in SLOW_MARKERS)]
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]
    for item in items:
        for name, problem in PROBLEMS.items():
            if problem and item.get_closest_marker(name):
                item.add_marker(pytest.mark.skip(reason=problem))


def pytest_unconfigure(config):
    shutil.rmtree(VAR_DIR, ignore_errors=True)
