"""The job store on PostgreSQL (``sdcpp serve --database postgresql://…``), for a queue that many
API processes and engine workers share.

Same tables, same queries, same migration path as the SQLite store (``store.JobQueries``); what
differs is isolated in the hooks this module fills in:

- placeholders: the queries are written with ``?``; ``_PgCursor`` hands psycopg ``%s``.
- claiming and recovery pick rows ``FOR UPDATE SKIP LOCKED``: two claimers never take the same
  job and never wait for each other; a crash record locks its one row (``FOR UPDATE``).
- ``create`` and schema upgrades take a transaction-scoped advisory lock, which is what SQLite's
  ``BEGIN IMMEDIATE`` gives for free: ``MAX(seq) + 1`` and the queue length check stay exact.
- the job counts are kept by one plpgsql trigger. It updates the two ``job_counts`` rows of a
  transition in status order, so concurrent transitions cannot deadlock on them.

Leases are the SQLite store's: ``lease_owner``/``lease_expires``/``heartbeat_at``, renewed by
the holder, on the database's clock: every timestamp a store writes or compares is the
database's ``clock_timestamp()``, as read at connect and again every minute, carried forward
on this process's monotonic clock in between (``_database_time``). Hosts whose wall clocks
disagree still agree on when a lease expires, and no query changes.
``recover(expired_only=True)`` is the only recovery a shared queue may run (``shared`` tells the
job service so). Every table name here is unprefixed and none starts with
``procrastinate_``, so procrastinate's schema can live in the same database.

Threading: one connection guarded by one lock, as on SQLite. A broken connection (server
restarted, network) is replaced at the next call; the call that saw it fails.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import SdcppError
from .auth.store import AuthQueries
from .sqlite import Cursor, SqlStore
from .store import _COLUMNS, Job, JobQueries

if TYPE_CHECKING:
    import psycopg

__all__ = ["DatabaseUnavailable", "PgAuthStore", "PgJobStore", "PgStore", "check_url", "redact"]

# One function keeps job_counts (store.py's COUNT_TRIGGERS, as plpgsql). The two rows of a
# transition are touched in "C" collation order of their status: every transaction takes the
# row locks in the same order, so none waits in a cycle.
_COUNT_FUNCTION = """
CREATE OR REPLACE FUNCTION sdcpp_job_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first_status TEXT;
    first_delta BIGINT;
    second_status TEXT;
    second_delta BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        first_status := NEW.status; first_delta := 1;
    ELSIF TG_OP = 'DELETE' THEN
        first_status := OLD.status; first_delta := -1;
    ELSIF OLD.status = NEW.status THEN
        RETURN NULL;
    ELSIF OLD.status COLLATE "C" < NEW.status COLLATE "C" THEN
        first_status := OLD.status; first_delta := -1;
        second_status := NEW.status; second_delta := 1;
    ELSE
        first_status := NEW.status; first_delta := 1;
        second_status := OLD.status; second_delta := -1;
    END IF;
    INSERT INTO job_counts (status, n) VALUES (first_status, first_delta)
        ON CONFLICT (status) DO UPDATE SET n = job_counts.n + EXCLUDED.n;
    IF second_status IS NOT NULL THEN
        INSERT INTO job_counts (status, n) VALUES (second_status, second_delta)
            ON CONFLICT (status) DO UPDATE SET n = job_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$"""
_COUNT_TRIGGER = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'job_counts_change' AND tgrelid = 'jobs'::regclass) THEN
        CREATE TRIGGER job_counts_change AFTER INSERT OR DELETE OR UPDATE OF status ON jobs
            FOR EACH ROW EXECUTE FUNCTION sdcpp_job_counts();
    END IF;
END $$"""


class DatabaseUnavailable(SdcppError):
    """psycopg is not installed, or the PostgreSQL server cannot be reached or used."""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DatabaseUnavailable(
            "a postgresql:// database needs psycopg: pip install 'sdcpp[postgres]' "
            "(or: pip install 'psycopg[binary]')"
        ) from None
    return psycopg


def check_url(url: str) -> str:
    """``url`` if it names a PostgreSQL database, else InvalidArgument-style ValueError."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"database must be a postgresql:// URL, got {redact(url)!r}")
    return url


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    credentials, _, host = netloc.rpartition("@")
    if not sep or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}{slash}{path}"


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    # No query here has a '?' or a '%' inside a string literal, so this is exact.
    return sql.replace("%", "%%").replace("?", "%s")


class _PgCursor:
    """A psycopg cursor that takes the ``?`` placeholders the shared queries use."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cur = cursor

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> _PgCursor:
        if parameters:
            self._cur.execute(_placeholders(sql), parameters)
        else:
            self._cur.execute(sql)
        return self

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> _PgCursor:
        self._cur.executemany(_placeholders(sql), seq_of_parameters)
        return self

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()


class PgStore(SqlStore):
    """``SqliteStore``'s contract on a PostgreSQL connection: connects, then ``_migrate()``.

    ``clock``: a fixed clock (tests); by default the database's (``_database_time``), with
    ``local_clock`` (monotonic) carrying it between two readings."""

    shared = True  # other processes hold leases in this database
    _SYNC_SECONDS = 60.0  # how often the database clock is read again

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        connect_timeout: float = 10.0,
        local_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(url)
        self._local = local_clock
        self._offset = 0.0  # database epoch seconds minus local_clock()
        self._synced_at: float | None = None  # local_clock() at the last reading
        self._clock = clock if clock is not None else self._database_time
        self._lock = threading.Lock()
        self._timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._pg = _psycopg()
        self._open()

    def _prepare(self) -> None:
        with self._lock:
            self._connection()

    @property
    def location(self) -> str:
        return redact(self.url)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise DatabaseUnavailable(f"the {self.NAME} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._pg.connect(
                    self.url,
                    autocommit=True,  # transactions are explicit: _write()
                    connect_timeout=max(1, round(self._timeout)),
                    application_name="sdcpp",
                )
            except self._pg.Error as exc:
                first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                raise DatabaseUnavailable(
                    f"cannot connect to PostgreSQL at {self.location}: {first}"
                ) from None
            self._synced_at = None  # a new server may have another clock
        assert self._conn is not None
        if self._synced_at is None or self._local() - self._synced_at > self._SYNC_SECONDS:
            self._sync_clock(self._conn)
        return self._conn

    def _sync_clock(self, conn: psycopg.Connection[Any]) -> None:
        # clock_timestamp(), not now(): now() is the start of the current transaction.
        before = self._local()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        after = self._local()
        assert row is not None
        self._offset = float(row[0]) - (before + after) / 2  # the reading's midpoint
        self._synced_at = after

    def _database_time(self) -> float:
        """Epoch seconds on the database server's clock."""
        return self._local() + self._offset

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield _PgCursor(cur)

    def _serialize(self, cur: Cursor) -> None:
        # What SQLite's BEGIN IMMEDIATE gives: one such transaction at a time (schema upgrades,
        # create's queue check and MAX(seq) + 1, a new user). Per schema: two sdcpp instances in
        # one database (search_path) do not wait on each other.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('sdcpp:' || current_schema()))")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock, self._connection().cursor() as cur:
            _PgCursor(cur).execute(sql, args)
            return cur.fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# A job's model file name (its path's last part): what ``models`` is matched against, whole or
# without its extension. The path is where the stored job
# keeps it: a schema-4 record's resolved engine files or spec (``job_record``), else the plain
# params of an older row.
_MODEL_FILE = (
    "regexp_replace(COALESCE(params::jsonb -> 'engine' ->> 'model', "
    "params::jsonb -> 'engine' ->> 'diffusion_model', params::jsonb -> 'spec' ->> 'model', "
    "params::jsonb ->> 'model', params::jsonb ->> 'diffusion_model'), '^.*/', '')"
)


class PgJobStore(JobQueries, PgStore):
    """The job queue in a PostgreSQL database; same interface and schema as ``JobStore``."""

    _count_triggers = (_COUNT_FUNCTION, _COUNT_TRIGGER)
    _LOCK_ROWS = " FOR UPDATE SKIP LOCKED"
    _LOCK_ROW = " FOR UPDATE"

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        connect_timeout: float = 10.0,
        local_clock: Callable[[], float] = time.monotonic,
        models: Sequence[str] = (),
    ) -> None:
        self._decoded = {}
        self.models = tuple(models)  # claim only jobs of these models (empty: any)
        super().__init__(url, clock=clock, connect_timeout=connect_timeout, local_clock=local_clock)

    def claim_next(self, worker_id: str, lease_seconds: float = 300.0) -> Job | None:
        """``JobQueries.claim_next``; with ``models`` set (``sdcpp worker --models``), the
        oldest queued job whose model file is one of them, by file name with or without its
        extension, so a worker keeps the models it holds loaded and hosts may mount the
        models folder anywhere."""
        if not self.models:
            return super().claim_next(worker_id, lease_seconds)
        now = self._clock()
        names = sorted({name.rsplit("/", 1)[-1] for name in self.models})
        with self._write() as cur:
            row = cur.execute(
                "UPDATE jobs SET status = 'processing', started_at = ?, "
                "attempts = attempts + 1, lease_owner = ?, lease_expires = ?, heartbeat_at = ? "
                "WHERE status = 'queued' AND id = (SELECT id FROM jobs WHERE status = 'queued' "
                f"AND ({_MODEL_FILE} = ANY(?) OR regexp_replace({_MODEL_FILE}, '[.][^.]*$', '') "
                f"= ANY(?)) ORDER BY seq LIMIT 1{self._LOCK_ROWS}) RETURNING {_COLUMNS}",
                (now, worker_id, now + lease_seconds, now, names, names),
            ).fetchone()
        return Job._from_row(row) if row else None

    def _columns(self, cur: Cursor) -> set[str]:
        rows = cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'jobs'"
        ).fetchall()
        return {row[0] for row in rows}


class PgAuthStore(AuthQueries, PgStore):
    """Users, API keys and revoked token ids beside the PostgreSQL job queue: every API process
    on the database sees the same accounts, and a revocation anywhere holds everywhere; and
    the signing secret (``shared_secret``), so a token one API process issued works on all."""

    def _migrate(self) -> None:
        super()._migrate()
        with self._write() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS signing_secret (id INTEGER PRIMARY KEY "
                "CHECK (id = 1), secret TEXT NOT NULL)"
            )

    def shared_secret(self) -> bytes:
        """The servers' signing secret (JWTs, output URLs), made by whichever process asks
        first; the others read it. In place of the data dir's ``secret.key``."""
        import secrets

        from .auth.secret import SECRET_BYTES

        with self._write() as cur:
            cur.execute(
                "INSERT INTO signing_secret (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                (secrets.token_hex(SECRET_BYTES),),
            )
            row = cur.execute("SELECT secret FROM signing_secret WHERE id = 1").fetchone()
        return bytes.fromhex(row[0])
