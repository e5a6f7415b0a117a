"""The job queue's failure handling: a crashed worker's job, a job given back at shutdown, and
jobs whose lease holder is gone (start-up and the periodic sweep).

``JobRecovery`` is a part of ``store.JobQueries`` (SQLite and PostgreSQL alike): the same
statements, the hooks (``_LOCK_ROWS``, ``_write``, ``_clock``) from the store it is mixed into.
"""

from __future__ import annotations

import builtins
from typing import Any

from .job_schema import _NO_LEASE, Job
from .sqlite import Cursor, SqlStore


class JobRecovery(SqlStore):
    """``record_crash``, ``release`` and ``recover`` of ``store.JobQueries``."""

    _LOCK_ROWS = ""  # see JobQueries

    def _fetch(self, cur: Cursor, job_id: str, lock: bool = False) -> Job | None:
        raise NotImplementedError  # JobQueries'

    def record_crash(
        self, job_id: str, reason: str, max_crashes: int = 2, worker_id: str | None = None
    ) -> Job:
        """The worker died running this job: re-queue it, or fail it after ``max_crashes``.

        Either way the crash is kept: ``crashes`` + 1, ``last_error`` = ``reason`` (it names
        the signal), ``last_error_at``. A re-queued job keeps its ``seq``; it was the oldest
        queued job when claimed, so it runs next. Raises KeyError for an unknown job,
        ValueError if it is not processing (or, given ``worker_id``, no longer that worker's).
        """
        now = self._clock()
        with self._write() as cur:
            job = self._fetch(cur, job_id, lock=True)
            if job is None:
                raise KeyError(job_id)
            if job.status != "processing":
                raise ValueError(f"job {job_id} is {job.status}, not processing")
            if worker_id is not None and job.lease_owner != worker_id:
                raise ValueError(f"job {job_id} is held by {job.lease_owner}, not {worker_id}")
            crashes = job.crashes + 1
            if crashes >= max_crashes:
                error = f"{reason} (not retried: crashed the worker {crashes} times)"
                sql = "status = 'failed', finished_at = ?, error = ?"
                args: tuple[Any, ...] = (now, error)
            else:
                sql, args = "status = 'queued', started_at = NULL", ()
            cur.execute(
                f"UPDATE jobs SET {sql}, crashes = ?, last_error = ?, last_error_at = ?, "
                f"{_NO_LEASE} WHERE id = ?",
                (*args, crashes, reason, now, job_id),
            )
            updated = self._fetch(cur, job_id)
        assert updated is not None
        return updated

    def release(self, job_id: str, worker_id: str, reason: str) -> Job | None:
        """Give a running job back to the queue without counting the attempt (a shutdown
        stopped it, not the job's fault); ``None`` if ``worker_id`` no longer holds it."""
        with self._write() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, attempts = attempts - 1, "
                f"last_error = ?, last_error_at = ?, {_NO_LEASE} "
                "WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                (reason, self._clock(), job_id, worker_id),
            )
            return self._fetch(cur, job_id) if cur.rowcount == 1 else None

    def recover(
        self,
        max_attempts: int = 2,
        *,
        expired_only: bool = False,
        keep_owner: str | None = None,
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Re-queue (or fail, after ``max_attempts``) jobs whose lease holder is gone.

        ``expired_only=False`` (start-up of the one server on a data dir): every 'processing'
        job, because the data dir lock (``datadir.py``) proves no other process holds a
        lease here. ``expired_only=True`` (the periodic sweep, and the only mode once many
        workers share a PostgreSQL queue): only leases whose ``lease_expires`` has passed,
        never those of ``keep_owner`` (this process: its running job has a watchdog).
        Each job recovered keeps why in ``last_error``.
        """
        now = self._clock()
        where = "status = 'processing'"
        args: builtins.list[Any] = []
        if expired_only:
            where += " AND lease_expires < ?"
            args.append(now)
        if keep_owner is not None:
            where += " AND (lease_owner IS NULL OR lease_owner <> ?)"
            args.append(keep_owner)
        with self._write() as cur:
            rows = cur.execute(
                f"SELECT id, attempts, lease_owner FROM jobs WHERE {where} ORDER BY seq"
                + self._LOCK_ROWS,
                args,
            ).fetchall()
            requeued, failed = [], []
            for job_id, attempts, holder in rows:
                why = f"lease of {holder or 'an earlier server'} lost (server stopped or died)"
                if attempts < max_attempts:
                    requeued.append((why, now, job_id))
                else:
                    failed.append((now, why, now, job_id))
            # Failed first: PostgreSQL's count triggers lock job_counts rows in status order
            # (failed < processing < queued), and one transaction must not go back in it.
            if failed:
                cur.executemany(
                    "UPDATE jobs SET status = 'failed', finished_at = ?, "
                    "error = 'interrupted by a server restart', last_error = ?, "
                    f"last_error_at = ?, {_NO_LEASE} WHERE id = ?",
                    failed,
                )
            if requeued:
                cur.executemany(
                    "UPDATE jobs SET status = 'queued', started_at = NULL, last_error = ?, "
                    f"last_error_at = ?, {_NO_LEASE} WHERE id = ?",
                    requeued,
                )
        return [row[-1] for row in requeued], [row[-1] for row in failed]
