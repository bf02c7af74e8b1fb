"""Settings, all driven by environment variables.

Two modes, chosen by DASHBOARD_ENV:
- "local" (the default, what `make run` uses): embedded defaults that need no
  servers — SQLite, and a Celery broker on a SQLite file, under VAR_DIR, and a
  secret key and an encryption key generated once into VAR_DIR.
- "production": every value that matters must be given explicitly; a missing
  or weak one stops the process before it serves, naming the variable.
"""

import socket
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from dashboard import local_secrets

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DASHBOARD_ENV = env.str("DASHBOARD_ENV", default="local")
if DASHBOARD_ENV not in ("local", "production"):
    raise ImproperlyConfigured(f"DASHBOARD_ENV must be 'local' or 'production', not {DASHBOARD_ENV!r}.")
PRODUCTION = DASHBOARD_ENV == "production"


def _required(name: str, why: str) -> str:
    value = env.str(name, default="").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DASHBOARD_ENV=production: {why}.")
    return value


def _parse(name: str, parser, default=environ.Env.NOTSET):
    """Read a typed variable, turning a malformed value into an error that names it."""
    try:
        return parser(name, default=default)
    except (ValueError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from exc


def _port_range(name: str, default: str) -> tuple[int, int]:
    low, _, high = env.str(name, default=default).partition("-")
    low, high = int(low), int(high or low)
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"expected LOW-HIGH within 1024-65535, got {low}-{high}")
    return low, high


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    # Stricter than environ's bool: a typo such as DEBUG=ture must not
    # silently mean "off".
    raw = env.str(name, default=str(default)).strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ImproperlyConfigured(f"{name} is malformed: use true or false, not {raw!r}.")
    return raw in _TRUE


VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
if not PRODUCTION:
    VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = _bool("DEBUG", default=False)

# --- secrets -----------------------------------------------------------------

if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY", "a long random string used to sign sessions")
    local_secrets.reject_weak_secret_key(SECRET_KEY)
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or local_secrets.read_or_create_secret_key(VAR_DIR / "secret_key")

# Fernet keys, newest first: the first encrypts, all of them decrypt, so a key
# can be rotated in without losing what the older ones protect.
if PRODUCTION:
    ENCRYPTION_KEYS = _required(
        "ENCRYPTION_KEYS", "comma-separated Fernet keys (newest first) that encrypt stored secrets"
    ).split(",")
else:
    ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[]) or [
        local_secrets.read_or_create_fernet_key(VAR_DIR / "encryption_key")
    ]
ENCRYPTION_KEYS = [key.strip() for key in ENCRYPTION_KEYS if key.strip()]
local_secrets.check_fernet_keys(ENCRYPTION_KEYS)

# Keys of the audit chain's HMAC, ID:SECRET, newest first: the first signs new
# events, every one verifies the events that name its id. Kept out of the
# database, so a database writer cannot recompute a hash (deployments/audit.py).
if PRODUCTION:
    AUDIT_KEYS = _required(
        "AUDIT_KEYS", "comma-separated ID:SECRET keys (newest first) that sign the audit chain"
    ).split(",")
else:
    AUDIT_KEYS = env.list("AUDIT_KEYS", default=[]) or [local_secrets.read_or_create_audit_key(VAR_DIR / "audit_key")]
AUDIT_KEYS = [key.strip() for key in AUDIT_KEYS if key.strip()]
local_secrets.check_audit_keys(AUDIT_KEYS)
# Where the chain's head is written down at intervals (owner-only, append-only
# JSON lines), outside the database: deleting the newest events shows against
# the last line. Optionally also POSTed to a webhook that keeps its own copy.
AUDIT_ANCHOR_DIR = Path(env.str("AUDIT_ANCHOR_DIR", default=str(VAR_DIR / "audit-anchors")))
AUDIT_ANCHOR_INTERVAL = _parse("AUDIT_ANCHOR_INTERVAL", env.int, default=300)
AUDIT_ANCHOR_WEBHOOK_URL = env.str("AUDIT_ANCHOR_WEBHOOK_URL", default="").strip()
# And/or to syslog: HOST:PORT (UDP) or the path of a Unix socket such as /dev/log.
AUDIT_ANCHOR_SYSLOG = env.str("AUDIT_ANCHOR_SYSLOG", default="").strip()
if AUDIT_ANCHOR_SYSLOG and not AUDIT_ANCHOR_SYSLOG.startswith("/"):
    _host, _, _port = AUDIT_ANCHOR_SYSLOG.rpartition(":")
    if not _host or not _port.isdigit():
        raise ImproperlyConfigured(
            f"AUDIT_ANCHOR_SYSLOG is malformed: use HOST:PORT or /path/to/socket, not {AUDIT_ANCHOR_SYSLOG!r}."
        )

# --- hosts -------------------------------------------------------------------

if PRODUCTION:
    ALLOWED_HOSTS = _required("ALLOWED_HOSTS", "the host names this dashboard answers to").split(",")
    ALLOWED_HOSTS = [host.strip() for host in ALLOWED_HOSTS if host.strip()]
else:
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- apps --------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",
    "template_partials",
    "axes",
    "csp",
    "deployments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "deployments.request_context.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads a form's body: who may send one, and
    # how large, is decided from the headers first (deployments/uploads.py).
    "deployments.uploads.UploadGateMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: it tells the person why they were signed out.
    "deployments.session_limits.SessionLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Domain errors a view left unhandled: a message on the page, never a 500.
    "deployments.page_errors.DomainErrorMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"
ASGI_APPLICATION = "dashboard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deployments.context_processors.navigation",
            ],
        },
    },
]

# --- database ----------------------------------------------------------------

if PRODUCTION:
    _required("DATABASE_URL", "a postgres:// URL for the dashboard's database")
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": _parse("DATABASE_URL", env.db_url)}
    if "ENGINE" not in DATABASES["default"]:
        raise ImproperlyConfigured(
            "DATABASE_URL is malformed: expected postgres://USER:PASSWORD@HOST:5432/NAME (or sqlite:////ABS/PATH)."
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # IMMEDIATE makes concurrent writers queue instead of failing with
            # "database is locked" half-way through a transaction; WAL lets the
            # web server read while a worker writes, and NORMAL sync makes a
            # commit one write instead of several fsyncs.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DATABASES["default"].setdefault(
    "CONN_MAX_AGE",
    _parse("DB_CONN_MAX_AGE", env.int, default=0 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 60),
)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth --------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

# Local username/password accounts; teams on single sign-on can turn them off.
PASSWORD_LOGIN = _bool("PASSWORD_LOGIN", default=True)

# Single sign-on with OpenID Connect: on when OIDC_ISSUER is set. The other
# endpoints come from the issuer's discovery document (deployments/sso/).
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").strip()
OIDC_ENABLED = bool(OIDC_ISSUER)
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="Microsoft Entra ID")
if OIDC_ENABLED:
    OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="").strip()
    OIDC_RP_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
    if not OIDC_RP_CLIENT_ID or not OIDC_RP_CLIENT_SECRET:
        raise ImproperlyConfigured("OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET must be set too.")
    if not OIDC_ISSUER.startswith("https://") and PRODUCTION:
        raise ImproperlyConfigured("OIDC_ISSUER must be an https:// URL when DASHBOARD_ENV=production.")
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
    OIDC_USE_NONCE = True
    OIDC_USE_PKCE = True
    OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
    OIDC_TIMEOUT = _parse("OIDC_TIMEOUT", env.float, default=10.0)
    OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
    OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
    OIDC_ROLE_MAP = env.str("OIDC_ROLE_MAP", default="")
    # An identity whose groups grant no role is turned away (and loses any
    # role it had) rather than signed in to an empty dashboard.
    OIDC_REQUIRE_ROLE = _bool("OIDC_REQUIRE_ROLE", default=True)
    from deployments.sso.role_map import parse as _parse_role_map

    _parse_role_map(OIDC_ROLE_MAP)  # a malformed map stops start-up, naming the entry
if not PASSWORD_LOGIN and not OIDC_ENABLED:
    raise ImproperlyConfigured("PASSWORD_LOGIN=false needs single sign-on (OIDC_ISSUER), or nobody can sign in.")

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out (username, address) before any check.
    "axes.backends.AxesStandaloneBackend",
    *(["django.contrib.auth.backends.ModelBackend"] if PASSWORD_LOGIN else []),
    *(["deployments.sso.backend.DashboardOIDCBackend"] if OIDC_ENABLED else []),
]

# API requests with a bad token: after this many from one address within the
# window (seconds), that address gets 429 until the window ends.
API_TOKEN_FAILURE_LIMIT = _parse("API_TOKEN_FAILURE_LIMIT", env.int, default=20)
API_TOKEN_FAILURE_WINDOW = _parse("API_TOKEN_FAILURE_WINDOW", env.int, default=60)
# The largest JSON body the API reads (413 beyond it, from the Content-Length
# alone). Django's own cap on a body read into memory is kept the same, so a
# chunked body with no Content-Length stops at the same size. Large tensors
# go through the infer operation's binary form, which streams.
API_MAX_JSON_BYTES = _parse("API_MAX_JSON_BYTES", env.int, default=4 * 1024**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_JSON_BYTES
# The test-inference console's caps, checked on the shapes before a value is
# generated or decoded (400 naming the cap): elements per tensor, and bytes
# per tensor and per request as the dashboard holds them (a BYTES element
# counts 64 bytes: it is a Python object). The binary form streams, so only
# its shapes are checked against these.
CONSOLE_MAX_ELEMENTS = _parse("CONSOLE_MAX_ELEMENTS", env.int, default=4 * 1024**2)
CONSOLE_MAX_TENSOR_BYTES = _parse("CONSOLE_MAX_TENSOR_BYTES", env.int, default=16 * 1024**2)
CONSOLE_MAX_REQUEST_BYTES = _parse("CONSOLE_MAX_REQUEST_BYTES", env.int, default=32 * 1024**2)

# Brute force: failures are counted per (username, address), so an attacker
# cannot lock a user out everywhere by failing from one place.
AXES_FAILURE_LIMIT = _parse("AXES_FAILURE_LIMIT", env.int, default=5)
AXES_COOLOFF_TIME = timedelta(minutes=_parse("AXES_COOLOFF_MINUTES", env.int, default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "deployments/locked_out.html"
AXES_VERBOSE = False
# Proxies in front of the dashboard whose X-Forwarded-For entries are
# believed (deployments/client_address.py): 1 behind one load balancer.
TRUSTED_PROXY_COUNT = _parse("TRUSTED_PROXY_COUNT", env.int, default=1 if PRODUCTION else 0)
AXES_CLIENT_IP_CALLABLE = "deployments.client_address.client_address"
AXES_WHITELIST_CALLABLE = "deployments.sso.views.exempt_from_lockout"

# Sessions end after SESSION_IDLE_MINUTES without a request, and in any case
# SESSION_MAX_HOURS after sign-in (deployments/session_limits.py).
SESSION_IDLE_TIMEOUT = timedelta(minutes=_parse("SESSION_IDLE_MINUTES", env.int, default=30))
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=_parse("SESSION_MAX_HOURS", env.int, default=12))
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())

# --- i18n / static -----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Locally, serve straight from static/ so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# Everything the dashboard writes (unpacked model repositories, logs of local
# Triton servers) stays below this root.
STORAGE_ROOT = Path(env.str("STORAGE_ROOT", default=str(VAR_DIR / "storage"))).resolve()

# --- model repositories ------------------------------------------------------

# Limits on what an upload or server import may contain; exceeding any one
# rejects it whole, naming the entry.
REPOSITORY_MAX_UPLOAD_BYTES = _parse("REPOSITORY_MAX_UPLOAD_BYTES", env.int, default=4 * 1024**3)
REPOSITORY_MAX_TOTAL_BYTES = _parse("REPOSITORY_MAX_TOTAL_BYTES", env.int, default=16 * 1024**3)
REPOSITORY_MAX_ENTRIES = _parse("REPOSITORY_MAX_ENTRIES", env.int, default=10_000)
REPOSITORY_MAX_COMPRESSION_RATIO = _parse("REPOSITORY_MAX_COMPRESSION_RATIO", env.int, default=200)
REPOSITORY_MAX_CONFIG_BYTES = _parse("REPOSITORY_MAX_CONFIG_BYTES", env.int, default=1024 * 1024)
# Server directories users may import from; empty turns server imports off.
# Locally the bundled examples can be imported.
REPOSITORY_IMPORT_ROOTS = env.list(
    "REPOSITORY_IMPORT_ROOTS", default=[] if PRODUCTION else [str(BASE_DIR / "examples" / "model_repositories")]
)
# Large uploads spool to disk beside the storage, not in memory or a small /tmp.
FILE_UPLOAD_TEMP_DIR = str(STORAGE_ROOT / "uploads")
# The first handler accepts a file only where the upload gate allowed one and
# stops at the limit as the bytes arrive (deployments/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "deployments.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
try:
    Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"STORAGE_ROOT ({STORAGE_ROOT}) must be a writable directory: {exc}") from exc

# --- local Triton target -----------------------------------------------------

LOCAL_TRITON_RUNTIME_DIR = Path(env.str("LOCAL_TRITON_RUNTIME_DIR", default=str(VAR_DIR / "triton-runtime")))
# Seconds a local Triton may take to load every model before the deploy fails.
LOCAL_TRITON_READY_TIMEOUT = _parse("LOCAL_TRITON_READY_TIMEOUT", env.int, default=120)
LOCAL_TRITON_STOP_GRACE = _parse("LOCAL_TRITON_STOP_GRACE", env.int, default=10)
# The local target runs deployers' model code on the dashboard's own hosts:
# offered in local mode, off in production unless enabled.
LOCAL_TARGET_ENABLED = _bool("LOCAL_TARGET_ENABLED", default=not PRODUCTION)
# Every local deployment runs sandboxed (workers/targets/local/sandbox.py);
# "off" only where every deployer is trusted with the dashboard's own files.
LOCAL_TARGET_SANDBOX = _bool("LOCAL_TARGET_SANDBOX", default=True)
# A sandbox's address-space cap (a target's memory_limit_mb setting overrides it).
LOCAL_TARGET_MEMORY_MB = _parse("LOCAL_TARGET_MEMORY_MB", env.int, default=8192)
# Each local deployment's endpoint: one stable port from this range for its
# whole life, on this address (workers/targets/local/router.py).
LOCAL_ENDPOINT_ADDRESS = env.str("LOCAL_ENDPOINT_ADDRESS", default="127.0.0.1")
LOCAL_ENDPOINT_PORTS = _parse("LOCAL_ENDPOINT_PORTS", _port_range, default="20000-20999")
# Seconds a redeploy or delete lets requests in flight finish before the old servers stop.
LOCAL_ENDPOINT_DRAIN_SECONDS = _parse("LOCAL_ENDPOINT_DRAIN_SECONDS", env.int, default=30)

# --- target kinds and worker hosts -------------------------------------------

# This process's host, as host-bound targets (local) name it: their operations
# go to the queue host.<WORKER_HOST>, which only this host's worker consumes.
WORKER_HOST = env.str("WORKER_HOST", default="") or socket.gethostname()
# Kinds made for the test suite (the in-memory "fake") are offered under DEBUG
# or with this on; never in production.
TARGET_TEST_KINDS = _bool("TARGET_TEST_KINDS", default=False)

# --- health poller ----------------------------------------------------------------

HEALTH_POLL_INTERVAL = _parse("HEALTH_POLL_INTERVAL", env.int, default=15)
HEALTH_CONCURRENCY = _parse("HEALTH_CONCURRENCY", env.int, default=100)
HEALTH_PROBE_TIMEOUT = _parse("HEALTH_PROBE_TIMEOUT", env.float, default=3.0)
# Triton /metrics: scraped each minute, one point per series and minute, kept this long.
METRICS_RETENTION_DAYS = _parse("METRICS_RETENTION_DAYS", env.int, default=7)

# --- Azure ML targets ------------------------------------------------------------

# Seconds a worker follows an SDK v2 deployment's long-running operation (to
# catch Azure's failure reason) before leaving it to the reconciler.
AZUREML_V2_DEPLOY_WAIT = _parse("AZUREML_V2_DEPLOY_WAIT", env.int, default=600)

# --- deployment engine --------------------------------------------------------

RECONCILE_INTERVAL = _parse("RECONCILE_INTERVAL", env.int, default=10)
# A running operation whose heartbeat is older than this lost its worker.
OPERATION_STALE_AFTER = _parse("OPERATION_STALE_AFTER", env.int, default=60)
# A queued operation no worker took within this many seconds is sent again
# (a broker restart can lose messages; the claim makes duplicates harmless).
OPERATION_RESEND_AFTER = _parse("OPERATION_RESEND_AFTER", env.int, default=30)
# Worker deaths after which an operation stops being re-driven.
OPERATION_MAX_ATTEMPTS = _parse("OPERATION_MAX_ATTEMPTS", env.int, default=3)
# How long an operation follows a change the target is still carrying out
# (an Azure deployment still provisioning) before it needs attention.
OPERATION_FOLLOW_FOR = _parse("OPERATION_FOLLOW_FOR", env.int, default=7200)
# The first retry of a transient target error waits this long, doubling each
# time (a Retry-After from the target is honoured when longer).
OPERATION_RETRY_BASE = _parse("OPERATION_RETRY_BASE", env.int, default=10)
# A local server that keeps dying is restarted after LOCAL_RESTART_BACKOFF
# seconds, doubling each time, and left for a person after LOCAL_RESTART_LIMIT
# restarts in a row without coming up healthy.
LOCAL_RESTART_BACKOFF = _parse("LOCAL_RESTART_BACKOFF", env.int, default=10)
LOCAL_RESTART_LIMIT = _parse("LOCAL_RESTART_LIMIT", env.int, default=5)

# --- notifications -------------------------------------------------------------

# Mail goes through Django's backend: SMTP when EMAIL_HOST is set, otherwise
# written to the console log (make run) so nothing is silently dropped.
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = _parse("EMAIL_PORT", env.int, default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = _bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = 10
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
# Where the file-based mail backend writes (EMAIL_BACKEND=...filebased.EmailBackend).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="triton-dashboard@localhost")
# Where links in notifications point, e.g. https://dashboard.example.com.
DASHBOARD_URL = env.str("DASHBOARD_URL", default="http://127.0.0.1:8000").rstrip("/")
# Seconds between webhook attempts; one attempt more than there are delays.
WEBHOOK_RETRY_DELAYS = _parse(
    "WEBHOOK_RETRY_DELAYS",
    lambda name, default: [int(v) for v in env.list(name, default=default)],
    default=["10", "60", "300", "900"],
)
WEBHOOK_TIMEOUT = _parse("WEBHOOK_TIMEOUT", env.float, default=5.0)

# --- load tests and config searches ------------------------------------------

# Bounds on what one load test may ask for: clients at once, requests in
# all, seconds in all (below CELERY_TASK_SOFT_TIME_LIMIT, with room for
# setting up). A running test that has not beaten for LOADTEST_STALE_AFTER
# seconds lost its worker and is failed by the reconciler.
LOADTEST_MAX_CONCURRENCY = _parse("LOADTEST_MAX_CONCURRENCY", env.int, default=64)
LOADTEST_MAX_REQUESTS = _parse("LOADTEST_MAX_REQUESTS", env.int, default=500_000)
LOADTEST_MAX_SECONDS = _parse("LOADTEST_MAX_SECONDS", env.int, default=600)
LOADTEST_STALE_AFTER = _parse("LOADTEST_STALE_AFTER", env.int, default=90)
# A config search's scratch deployments and sweeps, all of them together.
CONFIG_SEARCH_MAX_SECONDS = _parse("CONFIG_SEARCH_MAX_SECONDS", env.int, default=780)

# --- Celery ------------------------------------------------------------------

if PRODUCTION:
    _required("REDIS_URL", "a redis:// URL for the Celery broker")
REDIS_URL = env.str("REDIS_URL", default="")
# Shared by every web process (token-failure counts, cached repository
# diffs): Redis in production, files under VAR_DIR locally.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
# Redis redelivers an unacknowledged task after this many seconds; every
# countdown and time limit must stay below it or a task would run twice.
CELERY_VISIBILITY_TIMEOUT = _parse("CELERY_VISIBILITY_TIMEOUT", env.int, default=3600)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
else:
    # make run's: kombu's SQLAlchemy transport on a SQLite file (dashboard/embedded_broker.py says why).
    from dashboard import embedded_broker

    _broker_db = VAR_DIR / "broker.sqlite3"
    CELERY_BROKER_URL = embedded_broker.url(_broker_db)
    CELERY_BROKER_TRANSPORT = embedded_broker.TRANSPORT
    CELERY_BROKER_TRANSPORT_OPTIONS = embedded_broker.transport_options(_broker_db)
# State lives in the database (Operation rows), never in a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = _parse("CELERY_TASK_SOFT_TIME_LIMIT", env.int, default=900)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
WORKER_HEARTBEAT_INTERVAL = timedelta(seconds=_parse("WORKER_HEARTBEAT_INTERVAL", env.int, default=30))

# Three queues, so that a burst of webhooks or a slow health round never
# delays a deploy; host-bound operations go to host.<WORKER_HOST> instead
# (deployments/queue.py chooses). Every worker consumes what it is started
# with (-Q): see the Procfile and docker-compose.yml.
CELERY_TASK_DEFAULT_QUEUE = "operations"
CELERY_TASK_ROUTES = {
    "workers.run_operation": {"queue": "operations"},
    "workers.test_target": {"queue": "operations"},
    "workers.adopt_services": {"queue": "operations"},
    "workers.compare_migration": {"queue": "operations"},
    "workers.run_load_test": {"queue": "operations"},
    "workers.run_config_search": {"queue": "operations"},
    "workers.reconcile": {"queue": "periodic"},
    "workers.observe_host": {"queue": "periodic"},
    "workers.health_round": {"queue": "periodic"},
    "workers.scrape_metrics": {"queue": "periodic"},
    "workers.heartbeat": {"queue": "periodic"},
    "workers.anchor_audit": {"queue": "periodic"},
    "workers.send_email": {"queue": "notifications"},
    "workers.deliver_webhook": {"queue": "notifications"},
}

CELERY_BEAT_SCHEDULE = {
    "metrics-scrape": {"task": "workers.scrape_metrics", "schedule": 60.0, "options": {"expires": 60.0}},
    "health-round": {
        "task": "workers.health_round",
        "schedule": float(HEALTH_POLL_INTERVAL),
        "options": {"expires": float(HEALTH_POLL_INTERVAL)},
    },
    "reconcile": {
        "task": "workers.reconcile",
        "schedule": float(RECONCILE_INTERVAL),
        "options": {"expires": float(RECONCILE_INTERVAL)},
    },
    "audit-anchor": {
        "task": "workers.anchor_audit",
        "schedule": float(AUDIT_ANCHOR_INTERVAL),
        "options": {"expires": float(AUDIT_ANCHOR_INTERVAL)},
    },
    "worker-heartbeat": {
        "task": "workers.heartbeat",
        "schedule": WORKER_HEARTBEAT_INTERVAL.total_seconds(),
        # A heartbeat nobody took in time says nothing; don't let them pile up.
        "options": {"expires": WORKER_HEARTBEAT_INTERVAL.total_seconds()},
    },
}

# --- security ----------------------------------------------------------------

from csp.constants import NONCE, NONE, SELF  # noqa: E402

# Every response: no inline script without the request's nonce, no inline
# styles, nothing from elsewhere, no plugins, no <base>, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", default=True)
    # Behind a TLS-terminating proxy, the proxy says the request was HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _parse("SECURE_HSTS_SECONDS", env.int, default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = _bool("SECURE_HSTS_PRELOAD", default=True)
    if not SECURE_HSTS_PRELOAD:
        # Opting out of the preload list is a deliberate choice, not an oversight.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off when DASHBOARD_ENV=production.")
    # The health endpoint must answer load balancers over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]

# --- logging -----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # One line per probe would drown everything else.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
