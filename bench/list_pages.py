"""List pages at scale: each page's server time with 1,000,000 audit events
and 10,000 deployments (and as many approval requests, two operations for
each that ran and an hour of minute figures for each healthy one) against
the same page with 100 of each, in the same run, on PostgreSQL.

    .venv/bin/python bench/list_pages.py [--events 1000000] [--deployments 10000] [--calls 15]

It creates (and at the end drops) its own database, BENCH_DATABASE (default
triton_dashboard_bench) on the PostgreSQL of BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres). Rows are seeded with SQL
(generate_series); the pages are served in-process through Django's full
stack (middleware, auth, templates), so "server time" excludes only the
network. Goal: every page at most 2x its 100-row time.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
NAME = os.environ.get("BENCH_DATABASE", "triton_dashboard_bench")
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "VAR_DIR": tempfile.mkdtemp(prefix="bench-lists-"),
        "DASHBOARD_ENV": "local",
        "DATABASE_URL": urlparse(ADMIN_URL)._replace(path=f"/{NAME}").geturl(),
    }
)
os.environ.pop("REDIS_URL", None)

import psycopg  # noqa: E402

if "bench" not in NAME:
    # It is dropped before and after the run: never point this at a real database.
    raise SystemExit(f"BENCH_DATABASE={NAME!r}: use a name with 'bench' in it; this database is dropped.")


def _admin_sql(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


_admin_sql(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
_admin_sql(f'CREATE DATABASE "{NAME}"')

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402

from deployments.models import AuditEvent, Deployment, DeployRequest, Target  # noqa: E402
from deployments.services.repositories import repository_load_example  # noqa: E402

EXAMPLES = ROOT / "examples" / "model_repositories"
PAGES = [
    ("audit log", "/audit/"),
    ("audit log, one actor", "/audit/?actor=user7"),
    ("audit log, one environment", "/audit/?environment=prod"),
    ("audit log, an action family", "/audit/?action=deployment."),
    ("audit log, a deep page", "/audit/?before={middle_seq}"),
    ("audit API", "/api/v1/audit?limit=100"),
    ("approvals, waiting for me", "/approvals/?tab=waiting"),
    ("approvals, recent", "/approvals/?tab=recent"),
    ("approvals API", "/api/v1/approvals?tab=recent"),
    ("deployments", "/deployments/"),
    ("deployments, one environment", "/deployments/?environment=prod"),
    ("deployments API", "/api/v1/deployments"),
    ("overview", "/"),
]


def seed_events(upto: int, start: int) -> None:
    """Events start..upto: a mix of actions, actors, objects and environments."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO deployments_auditevent
                (seq, at, actor_name, action, object_type, object_id, object_repr, environment,
                 details, request_id, prev_hash, hash, key_id)
            SELECT i, now() - ((%(upto)s - i) || ' seconds')::interval,
                   CASE WHEN i %% 2 = 0 THEN 'user7' ELSE 'user' || (i %% 50) END,
                   (ARRAY['deployment.requested','deployment.started','deployment.succeeded','console.inferred',
                          'user.login','repository.uploaded'])[1 + i %% 6],
                   'deployments.deployment', (i %% 10000)::text, 'deployment-' || (i %% 10000),
                   (ARRAY['dev','staging','prod',''])[1 + i %% 4], '{}'::jsonb, '', md5((i - 1)::text) || md5('x'),
                   md5(i::text) || md5('x'), ''
            FROM generate_series(%(start)s, %(upto)s) AS i
            """,
            {"start": start, "upto": upto},
        )


def seed_deployments(count: int, start: int, target: Target, repository, admin, requester) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO deployments_deployment
                (name, repository_id, repository_name, repository_digest, target_id, mode, entry_script,
                 pip_packages, worker_count, resources, auth_enabled, spec_digest, desired_state, status,
                 status_reason, scoring_uri, scoring_uri_before, control_plane, data_plane, observed, restarts,
                 restarts_in_a_row, probe_latencies, metrics_last, key_encrypted, secondary_key_encrypted,
                 adopted, created_by_id, created_at, updated_at)
            SELECT 'deployment-' || i, %(repository)s, 'example', %(digest)s, %(target)s, 'triton', '',
                   '[]', 1, '{}', true, md5(i::text) || md5('y'), 'present',
                   (ARRAY['healthy','pending_approval','failed','deleted'])[1 + i %% 4], '', '', '', '{}', '{}',
                   '{}', 0, 0, '[]', '{}', '', '', false, %(admin)s, now(), now() - (i || ' seconds')::interval
            FROM generate_series(%(start)s, %(upto)s) AS i
            """,
            {
                "repository": repository.pk,
                "digest": repository.digest,
                "target": target.pk,
                "admin": admin.pk,
                "start": start,
                "upto": start + count - 1,
            },
        )
        cursor.execute(
            """
            INSERT INTO deployments_deployrequest
                (deployment_id, environment_id, kind, spec_digest, spec, current, params, approvals_required,
                 requested_by_id, requested_by_name, requested_at, expires_at, status)
            SELECT d.id, %(environment)s, 'deploy', d.spec_digest, '{}', '{}', '{}', 1, %(requester)s,
                   'requester', now(), now() + interval '3 days',
                   CASE WHEN d.status = 'pending_approval' THEN 'pending' ELSE 'approved' END
            FROM deployments_deployment d
            WHERE NOT EXISTS (SELECT 1 FROM deployments_deployrequest r WHERE r.deployment_id = d.id)
            """,
            {"environment": target.environment_id, "requester": requester.pk},
        )
        # Every deployment that ran has operations (the tiles' last change, the
        # failures "needs you" lists) and an hour of minute figures (the tiles'
        # sparklines): two deploys each, one in twenty of the last ones failed.
        cursor.execute(
            """
            INSERT INTO deployments_operation
                (deployment_id, kind, status, idempotency_key, spec_digest, reason, params, celery_task_id,
                 attempts, waits, steps, error, created_by_id, created_at)
            SELECT d.id, 'deploy', CASE WHEN n = 2 AND d.id %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
                   gen_random_uuid(), d.spec_digest, '', '{}', '', 1, 0, '[]', '', %(admin)s,
                   now() - ((3 - n) || ' hours')::interval
            FROM deployments_deployment d, generate_series(1, 2) AS n
            WHERE d.status <> 'pending_approval'
              AND NOT EXISTS (SELECT 1 FROM deployments_operation o WHERE o.deployment_id = d.id)
            """,
            {"admin": admin.pk},
        )
        cursor.execute(
            """
            INSERT INTO deployments_metricpoint (deployment_id, minute, name, model, value)
            SELECT d.id, date_trunc('minute', now()) - (m || ' minutes')::interval, series.name, 'add_sub',
                   random() * 50
            FROM deployments_deployment d, generate_series(0, 59) AS m,
                 unnest(ARRAY['requests_per_s', 'failures_per_s', 'p95_ms']) AS series(name)
            WHERE d.status = 'healthy'
              AND NOT EXISTS (SELECT 1 FROM deployments_metricpoint p WHERE p.deployment_id = d.id)
            """
        )
        cursor.execute("ANALYZE")


def measure(client: Client, calls: int, middle_seq: int) -> dict[str, float]:
    times = {}
    for label, url in PAGES:
        url = url.format(middle_seq=middle_seq)
        for _ in range(3):
            response = client.get(url)  # warm-up
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            response = client.get(url)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
            samples.append((time.perf_counter() - started) * 1000)
        times[label] = statistics.median(samples)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    try:
        call_command("migrate", verbosity=0)
        call_command("bootstrap_demo", "--no-examples", stdout=open(os.devnull, "w"))  # noqa: SIM115
        users = get_user_model().objects
        admin = users.get(username="admin")
        requester = users.create_user("requester")  # never signs in: no password
        repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
        prod = Target.objects.get(name="local-prod")
        client = Client(SERVER_NAME="127.0.0.1")
        client.force_login(admin)
        from deployments.services.api_tokens import api_token_create

        _, key = api_token_create(user=admin, name="bench")
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {key}"

        base = AuditEvent.objects.count()
        seed_events(100, base + 1)
        seed_deployments(100, 1, prod, repository, admin, requester)
        small = measure(client, args.calls, 50)
        print(
            f"seeded: {AuditEvent.objects.count():,} events, {Deployment.objects.count():,} deployments, "
            f"{DeployRequest.objects.count():,} requests",
            flush=True,
        )

        started = time.perf_counter()
        seed_events(args.events, 101)
        seed_deployments(args.deployments - 100, 101, prod, repository, admin, requester)
        print(
            f"seeded: {AuditEvent.objects.count():,} events, {Deployment.objects.count():,} deployments, "
            f"{DeployRequest.objects.count():,} requests in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        large = measure(client, args.calls, args.events // 2)
    finally:
        connections.close_all()
        _admin_sql(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    print(f"{'page':32} {'100 rows':>10} {'at scale':>10} {'ratio':>7}")
    worst = 0.0
    for label, _ in PAGES:
        ratio = large[label] / small[label]
        worst = max(worst, ratio)
        print(f"{label:32} {small[label]:8.1f}ms {large[label]:8.1f}ms {ratio:6.2f}x")
    print(f"worst ratio {worst:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
