"""The job table's schema, its version history and the job record type, shared by the SQLite
store (``store.py``) and the PostgreSQL one (``pgstore.py``)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .job_record import row_params

JobStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "processing", "completed", "failed", "cancelled")
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
_DECODED_JOBS = 1000  # finished jobs whose decoded record list() keeps
JOB_KINDS: frozenset[str] = frozenset(
    {"txt2img", "img2img", "inpainting", "controlnet", "upscale", "video", "convert"}
)

# 2: job_counts and its triggers; 3: heartbeat_at, last_error(_at); 4: params may hold a job
# record with the typed spec (``job_record``). Rows of <= 3 keep their plain params dicts and
# still load and run (``job_record.job_params`` passes them through): no row is rewritten.
SCHEMA_VERSION = 4
# Portable on purpose (SQLite now, PostgreSQL when the queue is shared by many workers):
# - only TEXT, INTEGER, BIGINT and DOUBLE PRECISION. Not REAL: on PostgreSQL that is a 4-byte
#   float, which would round epoch seconds to about two minutes. SQLite maps each name to the
#   affinity we want (BIGINT -> INTEGER, DOUBLE PRECISION -> REAL).
# - JSON lives in TEXT (PostgreSQL could migrate it to JSONB later without changing the store).
# - ``seq`` is assigned by the store as MAX(seq)+1 inside the inserting transaction, not by
#   AUTOINCREMENT/SERIAL: on SQLite that transaction holds the write lock (BEGIN IMMEDIATE); on
#   PostgreSQL the UNIQUE constraint turns a concurrent duplicate into an error the insert retries
#   (or the column becomes GENERATED ... AS IDENTITY in that migration).
# - ``IF NOT EXISTS`` on tables and indexes is understood by both (PostgreSQL >= 9.5).
SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    seq           BIGINT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    params        TEXT NOT NULL,
    owner         TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    started_at    DOUBLE PRECISION,
    finished_at   DOUBLE PRECISION,
    attempts      INTEGER NOT NULL DEFAULT 0,
    crashes       INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    outputs       TEXT NOT NULL DEFAULT '[]',
    result        TEXT NOT NULL DEFAULT '{}',
    lease_owner   TEXT,
    lease_expires DOUBLE PRECISION,
    heartbeat_at  DOUBLE PRECISION,
    last_error    TEXT,
    last_error_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner);
CREATE TABLE IF NOT EXISTS job_counts (
    status TEXT PRIMARY KEY,
    n      BIGINT NOT NULL
);
"""
# Jobs per status, kept by the database itself: queue events need the counts at every submit
# and every job's end, and counting the table grows with it (3.7 ms at 100,000 jobs, on the
# event loop) while these stay constant. Triggers count every writer (a CLI, a second server)
# inside its own transaction. SQLite's trigger syntax; PostgreSQL gets the same three bodies as
# one plpgsql trigger function when the queue moves there (the table above is portable).
COUNT_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (status, n) VALUES (NEW.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
    END""",
    """CREATE TRIGGER IF NOT EXISTS job_counts_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO job_counts (status, n) VALUES (NEW.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
)

_COLUMNS = (
    "id, kind, status, params, owner, created_at, started_at, finished_at, attempts, crashes, "
    "error, outputs, result, lease_owner, lease_expires, seq, heartbeat_at, last_error, "
    "last_error_at"
)
# Added by schema 3 (ALTER TABLE ... ADD COLUMN: the same statement on SQLite and PostgreSQL).
_V3_COLUMNS = (
    ("heartbeat_at", "DOUBLE PRECISION"),
    ("last_error", "TEXT"),
    ("last_error_at", "DOUBLE PRECISION"),
)
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_NO_LEASE = "lease_owner = NULL, lease_expires = NULL"
# With no finished jobs to learn from, a client is told to come back after this long.
_DEFAULT_JOB_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored. ``params``: its engine params, derived from the stored spec record
    (``job_record.job_params``; the plain dict of a schema <= 3 row as it was)."""

    id: str
    kind: str
    status: str
    params: dict[str, Any]
    owner: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    crashes: int
    error: str | None
    outputs: list[str]
    result: dict[str, Any]
    lease_owner: str | None
    lease_expires: float | None
    seq: int
    # Leases (schema 3): the lease holder renews ``lease_expires`` and ``heartbeat_at`` while
    # the job runs; every crash or lost lease is kept in ``last_error`` even when re-queued.
    heartbeat_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # deep copy: callers may mutate freely

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> Job:
        (id_, kind, status, params, owner, created, started, finished, attempts, crashes, error,
         outputs, result, lease_owner, lease_expires, seq, *lease) = row  # fmt: skip
        return cls(
            id_, kind, status, row_params(id_, params), owner, created, started, finished,
            attempts, crashes, error, json.loads(outputs), json.loads(result),
            lease_owner, lease_expires, seq, *lease,
        )  # fmt: skip


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already; answer 503 with ``Retry-After``."""

    def __init__(self, queued: int, max_queue: int, retry_after: int) -> None:
        super().__init__(f"queue is full ({queued}/{max_queue} jobs waiting)")
        self.queued = queued
        self.max_queue = max_queue
        self.retry_after = retry_after


class QuotaExceeded(QueueFull):
    """The submitting user holds ``max_queue`` queued jobs already (``max_queue_per_user``);
    answered 429 with ``Retry-After`` (its own jobs must drain, not everyone's)."""

    def __init__(self, queued: int, max_queue: int, retry_after: int) -> None:
        super().__init__(queued, max_queue, retry_after)
        self.args = (f"queue quota reached ({queued}/{max_queue} of your jobs waiting)",)


def _dumps(value: Any) -> str:
    # allow_nan=False: NaN is not JSON, and PostgreSQL's json types would refuse it later.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))
