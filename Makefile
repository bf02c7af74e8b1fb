# Two commands do everything: `make run` and `make test` (`make test-fast` for the quick tier).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock requirements/bootstrap.lock cli/pyproject.toml | sha256sum | cut -c1-16)
# The browser tests' tools from the npm registry (axe-core), exactly as
# package-lock.json pins them: likewise reinstalled when the lock changes.
NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | sha256sum | cut -c1-16)

.PHONY: install run test test-fast lint format check-containers check-security lock clean

# A virtual environment with exactly the locked versions. The stamp's name
# carries the locks' digest (and the CLI's), so changing a lock reinstalls.
$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); set PYTHON=..." % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bootstrap.lock
	# Compiled now: where PYTHONDONTWRITEBYTECODE is set, every process would
	# otherwise compile each module it imports (Django's set-up took 5 s, not 1.5).
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(PY) requirements/dev.lock
	# The pipelines' CLI (cli/), editable: its dependencies are in the lock already.
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e ./cli
	rm -f $(VENV)/.installed-*
	touch $@

# npm ci empties node_modules/ first, old stamp included. Never served: only
# the browser tests read it (axe-core, tests/test_accessibility.py).
$(NODE_STAMP):
	@command -v npm >/dev/null || { echo "npm is needed for the browser tests' tools (Debian: apt-get install npm)"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP)

# The whole dashboard in the foreground on embedded defaults (SQLite, and a
# Celery broker on a SQLite file, under var/): the Procfile's web, workers and
# beat under supervisord, which restarts one that dies. Ctrl-C stops all.
run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo --url http://$(HOST):$(PORT)/
	$(PY) manage.py triton_runtime prepare || echo "The local Triton is unavailable here: deploys to local targets will fail. Details: $(PY) manage.py triton_runtime check"
	HOST=$(HOST) $(PY) manage.py run_stack --port $(PORT)

# Both tiers run in two pytest-xdist workers (TEST_WORKERS=0: one process);
# tests/services.py gives each worker its own databases and ports.
TEST_WORKERS ?= 2

# Every test, against the real PostgreSQL, Redis and Chromium found on this
# machine (tests/services.py says how they are found). A module's tests stay
# on one worker: its module-wide servers (a shared Triton) start once.
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The quick tier: SQLite, the in-memory fake target, no PostgreSQL, Redis,
# Triton, Azure SDK or Chromium (tests/services.py deselects what needs them).
test-fast: $(STAMP)
	TEST_TIER=fast $(PY) -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Django's deployment checklist on production settings (throw-away values),
# and known vulnerabilities with a fix in the locked dependencies.
check-security: $(STAMP)
	DASHBOARD_ENV=production ALLOWED_HOSTS=ci.example.com \
	  SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	  ENCRYPTION_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	  AUDIT_KEYS=ci:$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(32))') \
	  DATABASE_URL=postgres://dashboard@db.example.com:5432/dashboard REDIS_URL=redis://redis.example.com:6379/0 \
	  $(PY) manage.py check --deploy --fail-level WARNING
	$(PY) .ci/audit_dependencies.py

# No Docker engine runs here: validate the compose file and lint the Dockerfile.
check-containers: $(STAMP)
	docker-compose --env-file .env.example config --quiet
	$(VENV)/bin/hadolint Dockerfile

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-resolve the locks after editing requirements/*.in.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements/app.in -o requirements/app.lock
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements/dev.in -o requirements/dev.lock

clean:
	rm -rf $(VENV) var node_modules
