"""Skip a periodic job while its previous run is still going, instead of stacking runs."""

import contextlib
import zlib

from django.db import connection


@contextlib.contextmanager
def single_run(name: str):
    """Yields True if this process holds the job's lock, False if another run has it."""
    if connection.vendor != "postgresql":
        # SQLite (make run) has one worker process taking beat's jobs in turn.
        yield True
        return
    key = zlib.crc32(name.encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
