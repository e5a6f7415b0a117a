"""What processes sharing one PostgreSQL queue tell each other beyond the jobs table: a running
job's progress and its cancel request (``job_live``), and who the workers are (``workers``).

Tables of their own, beside the job schema (``store.py``), so the job format can change
without touching them and the SQLite store never has them (one process there knows it all).

- ``job_live``: one row per job a worker has claimed. The worker upserts its progress every
  ``LIVE_SECONDS`` and reads back ``cancel_requested`` in the same statement, so a cancel sent
  to any API process reaches the worker within that interval (the engine then stops at its
  next step). ``ended`` marks the job's end for the API processes' relays; ended rows are
  dropped after ``KEEP_ENDED`` seconds.
  ``preview`` holds the job's latest preview image. Each change is announced by NOTIFY
  (``cluster_notify``), the polls stay as the fallback.
- ``workers``: one row per live worker process, renewed with its heartbeat; a row whose
  heartbeat is older than the lease is shown as lost and dropped after ``KEEP_LOST``.

Times are the database's (``PgStore._database_time``), as for leases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .cluster_notify import TRIGGERS
from .pgstore import PgStore

__all__ = ["LIVE_SECONDS", "ClusterStore", "LiveRow", "WorkerRow"]

LIVE_SECONDS = 0.5  # progress writes and cancel polls of a running job
KEEP_ENDED = 600.0
KEEP_LOST = 3600.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS job_live (
        job_id           TEXT PRIMARY KEY,
        worker_id        TEXT NOT NULL,
        progress         TEXT NOT NULL DEFAULT '{}',
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        ended            BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at       DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS job_live_updated ON job_live (updated_at)",
    # the latest preview image of a running job, so any API process serves it (added later)
    "ALTER TABLE job_live ADD COLUMN IF NOT EXISTS preview BYTEA",
    """CREATE TABLE IF NOT EXISTS workers (
        id           TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        models       TEXT NOT NULL DEFAULT '[]',
        loaded       TEXT NOT NULL DEFAULT '[]',
        state        TEXT NOT NULL,
        current_job  TEXT,
        started_at   DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    )""",
    "ALTER TABLE workers ADD COLUMN IF NOT EXISTS device TEXT NOT NULL DEFAULT 'cpu'",
)


@dataclass(frozen=True, slots=True)
class LiveRow:
    job_id: str
    worker_id: str
    progress: dict[str, Any]
    ended: bool
    updated_at: float


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: str
    host: str
    pid: int
    models: list[str]  # what it claims ([]: every model)
    loaded: list[str]  # model files its engine holds
    state: str
    current_job: str | None
    started_at: float
    heartbeat_at: float
    device: str = "cpu"

    def to_dict(self, now: float, lease_seconds: float) -> dict[str, Any]:
        lost = now - self.heartbeat_at > lease_seconds
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "device": self.device,
            "models": self.models,
            "loaded_models": self.loaded,
            "state": "lost" if lost else self.state,
            "current_job": self.current_job,
            "started_at": self.started_at,
            "last_heartbeat": self.heartbeat_at,
            "heartbeat_age_s": round(max(0.0, now - self.heartbeat_at), 3),
        }


class ClusterStore(PgStore):
    """``job_live`` and ``workers`` on their own connection: progress writes several times a
    second never queue behind the job store's lock."""

    NAME = "cluster store"

    def _migrate(self) -> None:
        with self._write() as cur:
            self._serialize(cur)
            for statement in (*_SCHEMA, *TRIGGERS):
                cur.execute(statement)

    def now(self) -> float:
        return self._clock()

    # -- a running job ------------------------------------------------------------------------

    def report(self, job_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
        """The worker's progress of ``job_id``; True when a cancel was requested for it."""
        with self._write() as cur:
            row = cur.execute(
                "INSERT INTO job_live (job_id, worker_id, progress, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "worker_id = EXCLUDED.worker_id, progress = EXCLUDED.progress, ended = FALSE, "
                "updated_at = EXCLUDED.updated_at RETURNING cancel_requested",
                (job_id, worker_id, json.dumps(progress), self._clock()),
            ).fetchone()
        return bool(row[0])

    def preview(self, job_id: str, worker_id: str, png: bytes) -> None:
        """The running job's latest preview image (the worker writes one when it changes)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE job_live SET preview = ? WHERE job_id = ? AND worker_id = ?",
                (png, job_id, worker_id),
            )

    def read_preview(self, job_id: str) -> bytes | None:
        rows = self._read("SELECT preview FROM job_live WHERE job_id = ?", (job_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def ended(self, job_id: str, worker_id: str) -> None:
        """The job left ``worker_id`` (finished, re-queued or its lease lost)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE job_live SET ended = TRUE, preview = NULL, updated_at = ? WHERE job_id = ? "
                "AND worker_id = ?",
                (self._clock(), job_id, worker_id),
            )

    def request_cancel(self, job_id: str) -> None:
        """Ask whichever worker runs ``job_id`` to stop it (it polls ``report``)."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO job_live (job_id, worker_id, cancel_requested, updated_at) "
                "VALUES (?, '', TRUE, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "cancel_requested = TRUE",
                (job_id, self._clock()),
            )

    def changes(self, since: float) -> list[LiveRow]:
        """Rows written after ``since`` (the relay's poll), oldest first."""
        rows = self._read(
            "SELECT job_id, worker_id, progress, ended, updated_at FROM job_live "
            "WHERE updated_at > ? ORDER BY updated_at",
            (since,),
        )
        return [LiveRow(j, w, json.loads(p), bool(e), float(u)) for j, w, p, e, u in rows]

    # -- workers ------------------------------------------------------------------------------

    def beat(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        models: list[str],
        loaded: list[str],
        state: str,
        current_job: str | None,
        device: str = "cpu",
    ) -> None:
        """Register or renew a worker; also drops what has been stale for long."""
        now = self._clock()
        with self._write() as cur:
            cur.execute(
                "INSERT INTO workers (id, host, pid, models, loaded, state, current_job, "
                "started_at, heartbeat_at, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET loaded = EXCLUDED.loaded, "
                "state = EXCLUDED.state, current_job = EXCLUDED.current_job, "
                "heartbeat_at = EXCLUDED.heartbeat_at",
                (worker_id, host, pid, json.dumps(models), json.dumps(loaded), state,
                 current_job, now, now, device),
            )  # fmt: skip
            cur.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - KEEP_LOST,))
            cur.execute("DELETE FROM job_live WHERE ended AND updated_at < ?", (now - KEEP_ENDED,))

    def leave(self, worker_id: str) -> None:
        """A worker that stops cleanly takes its row with it."""
        with self._write() as cur:
            cur.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def workers(self) -> list[WorkerRow]:
        rows = self._read(
            "SELECT id, host, pid, models, loaded, state, current_job, started_at, heartbeat_at, "
            "device FROM workers ORDER BY started_at, id"
        )
        return [
            WorkerRow(i, h, int(p), json.loads(m), json.loads(lo), s, c, float(st), float(hb), d)
            for i, h, p, m, lo, s, c, st, hb, d in rows
        ]
