"""The persistent job queue: one SQLite file (WAL) under the data dir.

A job is committed before the HTTP answer, claimed in FIFO order (``seq``), and keeps its record
and output names until deleted. Lifecycle::

    queued -> processing -> completed | failed | cancelled
       ^          |
       +----------+  record_crash() / recover(): back to the queue, at most once by default
                     (``job_recovery.JobRecovery``)

Threading: one connection guarded by one lock. SQLite admits one writer at a time anyway and
every call here is a few microseconds, so a lock costs nothing measurable; in exchange there are
no per-thread connections to close (threads of Starlette's pool come and go), no SQLITE_BUSY
between our own threads, and ``close()`` really closes everything. Other *processes* on the same
file (a CLI, a second server later) are serialised by SQLite itself: writes run in
``BEGIN IMMEDIATE`` under a busy timeout.
"""

from __future__ import annotations

import builtins
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from .job_recovery import JobRecovery
from .job_schema import (  # re-exported: the store's public names
    _COLUMNS as _COLUMNS,  # pgstore's queries select the same columns
)
from .job_schema import (
    _DECODED_JOBS,
    _DEFAULT_JOB_SECONDS,
    _JOB_ID,
    _NO_LEASE,
    _V3_COLUMNS,
    COUNT_TRIGGERS,
    FINISHED,
    JOB_KINDS,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    Job,
    JobStatus,
    QueueFull,
    QuotaExceeded,
    _dumps,
)
from .sqlite import Cursor, SqliteStore

__all__ = [
    "COUNT_TRIGGERS",
    "FINISHED",
    "JOB_KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "Job",
    "JobQueries",
    "JobStatus",
    "JobStore",
    "QueueFull",
    "QuotaExceeded",
]


def _status_filter(
    status: str | Sequence[str] | None, owner: str | None
) -> tuple[str, builtins.list[Any]]:
    clauses: builtins.list[str] = []
    args: builtins.list[Any] = []
    if status is not None:
        wanted = [status] if isinstance(status, str) else builtins.list(status)
        unknown = set(wanted) - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown job status: {sorted(unknown)}")
        clauses.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "1 = 0")
        args += wanted
    if owner is not None:
        clauses.append("owner = ?")
        args.append(owner)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class JobQueries(JobRecovery):
    """The job queue's queries, written once for SQLite (``JobStore``) and PostgreSQL
    (``pgstore.PgJobStore``). What differs between the two is in the hooks below."""

    NAME = "job store"
    _decoded: dict[str, Job]  # finished jobs as decoded by list()
    _use_returning = True
    _count_triggers: tuple[str, ...] = ()
    # Appended to the SELECTs that pick rows to change (claiming, recovery): PostgreSQL locks
    # them so concurrent claimers skip each other's rows instead of taking the same job. SQLite
    # needs nothing: BEGIN IMMEDIATE already makes every write transaction exclusive.
    _LOCK_ROWS = ""
    _LOCK_ROW = ""  # the same for a read-then-update of one job

    def _columns(self, cur: Cursor) -> set[str]:
        """Column names of the jobs table."""
        raise NotImplementedError

    def _migrate(self) -> None:
        with self._write() as cur:
            self._serialize(cur)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            have = self._columns(cur)
            for name, kind in _V3_COLUMNS:  # a version 1 or 2 table: add the lease columns
                if name not in have:
                    cur.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            version = cur.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if version is not None and version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.location} has job schema version {version}; this sdcpp knows up to "
                    f"{SCHEMA_VERSION} (was it written by a newer version?)"
                )
            for trigger in self._count_triggers:
                cur.execute(trigger)
            if version is None or version < 2:
                # Counted once here, in the same transaction that starts keeping the counts.
                cur.execute("DELETE FROM job_counts")
                cur.execute(
                    "INSERT INTO job_counts (status, n) SELECT status, COUNT(*) FROM jobs "
                    "GROUP BY status"
                )
            if version is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                cur.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @property
    def schema_version(self) -> int:
        return int(self._read("SELECT MAX(version) FROM schema_version")[0][0])

    def write_problem(self) -> str | None:
        """None when the database takes a write now (a real, empty one: disk, permissions and
        locks all checked), else why not; for the readiness probe."""
        try:
            with self._write() as cur:
                cur.execute("UPDATE schema_version SET version = version")
        except Exception as exc:  # sqlite3 or psycopg: any refusal means not ready
            return f"the database takes no writes: {exc}"
        return None

    def _fetch(self, cur: Cursor, job_id: str, lock: bool = False) -> Job | None:
        where = f"WHERE id = ?{self._LOCK_ROW if lock else ''}"
        row = cur.execute(f"SELECT {_COLUMNS} FROM jobs {where}", (job_id,)).fetchone()
        return Job._from_row(row) if row else None

    # -- queue -------------------------------------------------------------------------------

    def create(
        self,
        kind: str,
        params: dict[str, Any],
        owner: str | None = None,
        max_queue: int | None = None,
        job_id: str | None = None,
        max_per_owner: int | None = None,
    ) -> Job:
        """Queue a job. ``max_queue``: refuse (QueueFull) at that many queued jobs;
        ``max_per_owner``: refuse (QuotaExceeded) when ``owner`` has that many queued."""
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}; expected one of {sorted(JOB_KINDS)}")
        if job_id is None:
            job_id = uuid.uuid4().hex
        elif not _JOB_ID.fullmatch(job_id):
            # The id names the job's output folder, so it must never carry a path.
            raise ValueError(f"job id must be 32 lowercase hex digits, got {job_id!r}")
        params_text = _dumps(params)
        with self._write() as cur:
            self._serialize(cur)
            if max_queue is not None:
                queued = cur.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                n = queued.fetchone()[0]
                if n >= max_queue:
                    raise QueueFull(n, max_queue, self._retry_after(cur))
            if max_per_owner and owner is not None:
                mine = cur.execute(
                    "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND owner = ?", (owner,)
                ).fetchone()[0]
                if mine >= max_per_owner:
                    raise QuotaExceeded(mine, max_per_owner, self._retry_after(cur))
            if cur.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise ValueError(f"job {job_id} exists already")
            cur.execute(
                "INSERT INTO jobs (id, seq, kind, status, params, owner, created_at) "
                "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, 'queued', ?, ?, ? FROM jobs",
                (job_id, kind, params_text, owner, self._clock()),
            )
            job = self._fetch(cur, job_id)
        assert job is not None
        return job

    def _retry_after(self, cur: Cursor) -> int:
        # One slot frees when the running job ends: mean duration of recent jobs minus how long
        # the oldest running one has been at it. A hint for clients, not a promise.
        durations = cur.execute(
            "SELECT finished_at - started_at FROM jobs WHERE status IN ('completed', 'failed') "
            "AND started_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY seq DESC LIMIT 20"
        ).fetchall()
        mean = sum(d for (d,) in durations) / len(durations) if durations else _DEFAULT_JOB_SECONDS
        started = cur.execute(
            "SELECT MIN(started_at) FROM jobs WHERE status = 'processing'"
        ).fetchone()[0]
        elapsed = self._clock() - started if started is not None else 0.0
        return max(1, min(3600, math.ceil(mean - elapsed)))

    def get(self, job_id: str) -> Job | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return Job._from_row(rows[0]) if rows else None

    def count(self, *, status: str | Sequence[str] | None = None, owner: str | None = None) -> int:
        where, args = _status_filter(status, owner)
        return int(self._read(f"SELECT COUNT(*) FROM jobs{where}", args)[0][0])

    def counts(self) -> dict[str, int]:
        found = dict(self._read("SELECT status, n FROM job_counts"))
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def position(self, job_id: str) -> int | None:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq <= "
            "(SELECT seq FROM jobs WHERE id = ? AND status = 'queued')",
            (job_id,),
        )
        return int(rows[0][0]) or None  # the subquery is NULL (count 0) unless the job is queued

    def claim_next(self, worker_id: str, lease_seconds: float = 300.0) -> Job | None:
        now = self._clock()
        sets = (now, worker_id, now + lease_seconds, now)
        update = (
            "UPDATE jobs SET status = 'processing', started_at = ?, attempts = attempts + 1, "
            "lease_owner = ?, lease_expires = ?, heartbeat_at = ? "
            "WHERE status = 'queued' AND id = "
        )
        pick = f"SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1{self._LOCK_ROWS}"
        with self._write() as cur:
            if self._use_returning:
                rows = cur.execute(f"{update}({pick}) RETURNING {_COLUMNS}", sets).fetchall()
                return Job._from_row(rows[0]) if rows else None
            picked = cur.execute(pick).fetchone()
            if picked is None or cur.execute(update + "?", (*sets, picked[0])).rowcount != 1:
                return None
            return self._fetch(cur, picked[0])

    def renew_lease(self, job_id: str, worker_id: str, lease_seconds: float = 300.0) -> bool:
        """The heartbeat: extend ``worker_id``'s lease; False if it no longer holds it."""
        now = self._clock()
        with self._write() as cur:
            cur.execute(
                "UPDATE jobs SET lease_expires = ?, heartbeat_at = ? WHERE id = ? "
                "AND lease_owner = ? AND status = 'processing'",
                (now + lease_seconds, now, job_id, worker_id),
            )
            return cur.rowcount == 1

    def expired_leases(self, now: float | None = None) -> builtins.list[Job]:
        now = self._clock() if now is None else now
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'processing' AND lease_expires < ? "
            "ORDER BY seq",
            (now,),
        )
        return [Job._from_row(row) for row in rows]

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        outputs: builtins.list[str] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
    ) -> Job | None:
        """End a job. ``outputs``/``result`` left ``None`` keep what the job already had.
        ``worker_id``: only while that worker holds the lease (``None`` when another took the
        job over after this one's lease expired: its result must not count twice)."""
        if status not in FINISHED:
            raise ValueError(f"a job can only finish as one of {sorted(FINISHED)}, not {status!r}")
        # Only a cancellation may skip the worker: a queued job never ran, so nothing else fits.
        allowed = "('processing', 'queued')" if status == "cancelled" else "('processing')"
        outputs_text = None if outputs is None else _dumps(outputs)
        result_text = None if result is None else _dumps(result)
        holder, held = ("", ()) if worker_id is None else (" AND lease_owner = ?", (worker_id,))
        with self._write() as cur:
            cur.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ?, outputs = COALESCE(?, "
                f"outputs), result = COALESCE(?, result), {_NO_LEASE} "
                f"WHERE id = ? AND status IN {allowed}{holder}",
                (status, self._clock(), error, outputs_text, result_text, job_id, *held),
            )
            return self._fetch(cur, job_id) if cur.rowcount == 1 else None

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job; ``None`` if it is not queued (running ones go via the worker)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ? "
                "WHERE id = ? AND status = 'queued'",
                (self._clock(), job_id),
            )
            return self._fetch(cur, job_id) if cur.rowcount == 1 else None

    def clear_queued(self, owner: str | None = None) -> int:
        """Cancel every queued job (of ``owner``). Records stay, so pollers see 'cancelled'."""
        where, args = _status_filter("queued", owner)
        with self._write() as cur:
            cur.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = ?{where}",
                (self._clock(), *args),
            )
            return cur.rowcount

    def delete(self, job_id: str) -> bool:
        """Forget a finished job. Its output files are the caller's to remove."""
        with self._write() as cur:
            row = cur.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            if row[0] not in FINISHED:
                raise ValueError(f"job {job_id} is {row[0]}; only finished jobs can be deleted")
            cur.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return True

    # Last in the class body: below this line the name ``list`` would mean this method.
    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> builtins.list[Job]:
        where, args = _status_filter(status, owner)
        order = "DESC" if newest_first else "ASC"
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs{where} ORDER BY seq {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [self._finished_job(row) for row in rows]

    def _finished_job(self, row: Sequence[Any]) -> Job:
        """``Job._from_row``, reusing the decoded record of a job that had already finished
        (finished rows never change): decoding their JSON columns was most of the time of a
        queue listing, the endpoint clients poll hardest."""
        job_id, status, finished_at = row[0], row[2], row[7]
        if status not in FINISHED:
            return Job._from_row(row)
        cached = self._decoded.get(job_id)
        if cached is not None and (cached.status, cached.finished_at) == (status, finished_at):
            return cached
        job = Job._from_row(row)
        with self._lock:
            self._decoded[job_id] = job
            while len(self._decoded) > _DECODED_JOBS:
                del self._decoded[next(iter(self._decoded))]  # the oldest entry
        return job


class JobStore(JobQueries, SqliteStore):
    """The job queue in the server's SQLite file (the default)."""

    _count_triggers = COUNT_TRIGGERS

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._decoded = {}
        # RETURNING (SQLite >= 3.35) saves a round trip when claiming; the fallback is equally
        # atomic because it runs inside the same BEGIN IMMEDIATE transaction.
        self._use_returning = sqlite3.sqlite_version_info >= (3, 35, 0)
        super().__init__(path, clock=clock)

    def _columns(self, cur: Cursor) -> set[str]:
        return {row[1] for row in cur.execute("PRAGMA table_info(jobs)").fetchall()}
