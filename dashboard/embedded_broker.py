"""`make run`'s Celery broker when no REDIS_URL is given: kombu's SQLAlchemy
transport on one SQLite file under VAR_DIR. No server to run, and a message
is a row written in one transaction, so a consumer never sees half of one
(kombu's file-system transport creates a message file before it writes it,
and a consumer could read it empty: celery/kombu#1551).

kombu's transport is used as it is, with four adjustments for several
processes sharing one SQLite file (docs/facts.md has the details):

- Connections: WAL (readers never wait for the writer), a long busy timeout
  (a writer waits for the lock instead of failing), and none kept open
  between transactions (NullPool): nothing is shared across the forks of
  Celery's prefork pool or gunicorn.
- A message that could not be stored raises, so that Celery's publish retry
  sends it again; kombu's own `_put` rolls back and drops it without a word.
- Two processes creating the same queue at once: the second one's unique
  violation is taken as "it exists now", not a crash.
- A message is deleted once it is taken (kombu only marks it invisible and
  never deletes it, so the table and every poll's scan would grow forever).
  Celery's acks_late is unchanged by this: an unacknowledged message lives in
  its worker's memory and goes back to the queue when the worker stops; a
  worker killed outright loses it, as with the file-system transport, and the
  reconciler re-drives the operation it was for.

It polls every POLLING_INTERVAL seconds (kombu's default is 1 s, which would
add up to a second to every click that sends a task); the SQLAlchemy
transport passes every transport option on to create_engine, so the interval
is set on the class here rather than in the options.
"""

import fcntl
import functools
import sqlite3
from pathlib import Path

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

# The dotted path Celery's broker_transport setting takes.
TRANSPORT = "dashboard.embedded_broker:Transport"
POLLING_INTERVAL = 0.2
# Seconds a writer waits for the database lock before it gives up.
BUSY_TIMEOUT = 60

# kombu marks a message taken (visible = 0); this removes it then.
_DELETE_TAKEN = """
CREATE TRIGGER IF NOT EXISTS kombu_message_delete_taken
AFTER UPDATE OF visible ON kombu_message WHEN NEW.visible = 0
BEGIN DELETE FROM kombu_message WHERE id = NEW.id; END
"""


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def transport_options(path: Path) -> dict:
    """Celery's broker_transport_options: kombu passes them to SQLAlchemy's create_engine."""
    return {"creator": functools.partial(connect, str(path)), "poolclass": NullPool}


def connect(path: str) -> sqlite3.Connection:
    # Each connection lives for one transaction (NullPool), but may be closed
    # by another thread than the one that opened it.
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False)
    # In WAL mode NORMAL is still safe from corruption; it saves an fsync per message.
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _prepare(path: str) -> None:
    """The settings a file keeps (WAL) and the trigger, set up once per file."""
    with sqlite3.connect(path, timeout=BUSY_TIMEOUT) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(_DELETE_TAKEN)
    connection.close()


class Channel(kombu_sqlalchemy.Channel):
    def _open(self):
        if self.connection.client.hostname in self._engines:
            return super()._open()
        path = make_url(self.connection.client.hostname).database
        # Processes starting together would race to create the tables (kombu
        # checks, then creates): one at a time, under a lock beside the file.
        with open(f"{path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            engines = super()._open()
            _prepare(path)
        return engines

    def _get_or_create(self, queue):
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            # Another process created this queue between our look and our insert.
            self.session.rollback()
            return super()._get_or_create(queue)

    def _put(self, queue, payload, **kwargs):
        message = self.message_cls(kombu_sqlalchemy.dumps(payload), self._get_or_create(queue))
        self.session.add(message)
        try:
            self.session.commit()
        except OperationalError:
            self.session.rollback()
            raise  # a connection error to kombu: Celery's publish retries it


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL
