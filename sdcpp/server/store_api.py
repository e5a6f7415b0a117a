"""The job store's interface, whatever the database, and the one place that picks it.

``JobStore`` (SQLite, the default, ``store.py``) and ``PgJobStore`` (PostgreSQL, ``pgstore.py``)
both implement ``JobStoreApi``; the job service, the routers and the estimator use only this.
Semantics are documented on ``store.JobQueries``, which implements it for both.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self

from .settings import Settings
from .store import Job, JobStore

if TYPE_CHECKING:
    from .pgstore import PgJobStore

__all__ = ["JobStoreApi", "open_job_store"]


class JobStoreApi(Protocol):
    NAME: str

    @property
    def shared(self) -> bool:
        """True when other processes may hold leases in the same queue (PostgreSQL): then
        only expired leases may be recovered, never every 'processing' job."""
        ...

    @property
    def location(self) -> str: ...

    @property
    def schema_version(self) -> int: ...

    def create(
        self,
        kind: str,
        params: dict[str, Any],
        owner: str | None = None,
        max_queue: int | None = None,
        job_id: str | None = None,
        max_per_owner: int | None = None,
    ) -> Job: ...

    def write_problem(self) -> str | None: ...

    def get(self, job_id: str) -> Job | None: ...

    def count(
        self, *, status: str | Sequence[str] | None = None, owner: str | None = None
    ) -> int: ...

    def counts(self) -> dict[str, int]: ...

    def position(self, job_id: str) -> int | None: ...

    def claim_next(self, worker_id: str, lease_seconds: float = 300.0) -> Job | None: ...

    def renew_lease(self, job_id: str, worker_id: str, lease_seconds: float = 300.0) -> bool: ...

    def expired_leases(self, now: float | None = None) -> builtins.list[Job]: ...

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        outputs: builtins.list[str] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
    ) -> Job | None: ...

    def cancel(self, job_id: str) -> Job | None: ...

    def clear_queued(self, owner: str | None = None) -> int: ...

    def delete(self, job_id: str) -> bool: ...

    def record_crash(
        self, job_id: str, reason: str, max_crashes: int = 2, worker_id: str | None = None
    ) -> Job: ...

    def release(self, job_id: str, worker_id: str, reason: str) -> Job | None: ...

    def recover(
        self,
        max_attempts: int = 2,
        *,
        expired_only: bool = False,
        keep_owner: str | None = None,
    ) -> tuple[builtins.list[str], builtins.list[str]]: ...

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> builtins.list[Job]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def open_job_store(settings: Settings) -> JobStoreApi:
    """PostgreSQL when ``settings.database_url`` names one, else the SQLite file in the data
    dir. Raises ``pgstore.DatabaseUnavailable`` (psycopg missing, server unreachable)."""
    if settings.database_url:
        from .pgstore import PgJobStore

        return PgJobStore(settings.database_url)
    return JobStore(settings.database_path)


if TYPE_CHECKING:  # mypy proves both stores implement the interface

    def _conforms(sqlite: JobStore, postgres: PgJobStore) -> builtins.list[JobStoreApi]:
        return [sqlite, postgres]
