# Production image of the dashboard: the same image runs web, worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DASHBOARD_ENV=production \
    STATIC_ROOT=/app/staticfiles \
    STORAGE_ROOT=/data/storage \
    AUDIT_ANCHOR_DIR=/data/audit-anchors

WORKDIR /app

# The local target's sandbox (bubblewrap), the bridges into it (socat) and its endpoints' router (haproxy).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap=0.8.0-2+deb12u1 socat=1.7.4.4-2 haproxy=2.6.12-1+deb12u4 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 1000 dashboard \
 && useradd --system --uid 1000 --gid dashboard --home-dir /app --shell /usr/sbin/nologin dashboard \
 && mkdir -p /data/storage /data/audit-anchors \
 && chown dashboard:dashboard /data/storage /data/audit-anchors \
 && chmod 700 /data/audit-anchors

# Exactly the locked versions, hash-checked.
COPY requirements/ requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/bootstrap.lock \
 && uv pip sync --system --no-cache requirements/app.lock

COPY . .

# Static files are collected at build time; the throw-away values below only
# satisfy production settings for this one command and are not kept in the image.
RUN SECRET_KEY="collectstatic-only-$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    AUDIT_KEYS="build:$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
    ALLOWED_HOSTS=build DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput

USER 1000:1000
VOLUME ["/data/storage", "/data/audit-anchors"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4).status != 200)"]

# All interfaces of the container, which compose publishes to no one: clients
# reach it through the `proxy` service (nginx), never directly.
CMD ["gunicorn", "dashboard.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
