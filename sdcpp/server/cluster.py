"""The job service of a process sharing a PostgreSQL queue with others (``--database``).

``ClusterJobService`` is ``JobService`` plus what crosses processes through the database
(``cluster_store``):

- as a worker (``sdcpp serve`` by default, ``sdcpp worker``): every ``LIVE_SECONDS`` it writes
  the running job's progress and reads back its cancel request, which it passes to the engine
  (a cancel sent to another API process stops the job at its next step); every heartbeat it
  renews its ``workers`` row (host, pid, models, current job).
- as an API process (every one, ``--no-worker`` ones included): a relay thread polls
  ``job_live`` and publishes what other processes' workers did on this process's event bus,
  so SSE, ``/ws`` and every dialect's progress route see a job that runs elsewhere; the job
  JSON takes its progress from the same rows. A cancel of a job running elsewhere is written
  there for its worker.

With ``run_jobs=False`` (``sdcpp serve --no-worker``) there is no dispatcher: the process
only queues, reads and cancels; ``RemoteEngine`` stands in for the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

from .cluster_store import LIVE_SECONDS, ClusterStore
from .events import EventBus
from .job_views import job_view
from .jobs import JobService
from .settings import Settings
from .store import Job
from .store_api import JobStoreApi

logger = logging.getLogger(__name__)

__all__ = ["ClusterJobService", "RemoteEngine", "job_service"]


class RemoteEngine:
    """The engine of an API process that runs no jobs: they run in the workers."""

    state = "remote"
    pid: int | None = None
    restarts = 0
    loaded_model: str | None = None

    @property
    def loaded_models(self) -> list[str]:
        return []

    def start(self) -> None:
        """Nothing to start: the engines are the workers'."""

    def stop(self, timeout: float = 10) -> None:
        """Nothing to stop."""

    def cancel(self, job_id: str, *, grace: float | None = None) -> bool:
        return False  # never runs one; ClusterJobService asks the worker through the database

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("an API process started with --no-worker runs no jobs")

    def load(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._refused("load")

    def unload(self, model: str | None = None) -> dict[str, Any]:
        return self._refused("unload")

    def _refused(self, what: str) -> dict[str, Any]:
        return {
            "type": "failed",
            "job_id": what,
            "error": "this API process runs no engine (--no-worker): models load in the "
            "workers (sdcpp worker --models NAME)",
            "code": "INVALID_ARGUMENT",
        }


class _StoredProgress:
    """A job's progress as its worker last wrote it, in the shape ``progress_fields`` reads."""

    def __init__(self, view: dict[str, Any]) -> None:
        self._view = view
        self.preview = None  # previews stay on the worker's host

    def view(self) -> dict[str, Any]:
        return dict(self._view)


class ClusterJobService(JobService):
    """``JobService``'s arguments, then: ``cluster`` (the shared tables), ``run_jobs`` (False:
    ``--no-worker``), ``models`` (what this worker claims), ``relay`` (an API process)."""

    def __init__(
        self,
        *service: Any,
        cluster: ClusterStore,
        run_jobs: bool = True,
        models: tuple[str, ...] = (),
        relay: bool = True,
    ) -> None:
        super().__init__(*service)
        self.cluster = cluster
        self.run_jobs = run_jobs
        self.models = models
        self.remote: dict[str, dict[str, Any]] = {}  # job id -> progress written elsewhere
        self._seen: dict[str, float] = {}  # job id -> updated_at of its last relayed row
        self._since = cluster.now() - 1.0
        self._halt = threading.Event()
        self._threads = []
        if relay:  # an API process: other processes' job changes onto this one's event bus
            self._threads.append(threading.Thread(target=self._relay_loop, name="sdcpp-relay"))
        if run_jobs:
            self._threads.append(threading.Thread(target=self._live_loop, name="sdcpp-live"))
        for thread in self._threads:
            thread.daemon = True

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.run_jobs:
            self._beat()
            super().start()
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float | None = None) -> None:
        if self.run_jobs:
            super().stop(grace)
        self._halt.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.run_jobs:
            try:
                self.cluster.leave(self.worker_id)
            except Exception:  # the database is away: the row goes stale and is shown lost
                logger.debug("could not remove the workers row", exc_info=True)
        self.cluster.close()

    def wait_idle(self, timeout: float) -> bool:
        return super().wait_idle(timeout) if self.run_jobs else True

    def readiness(self) -> list[str]:
        problems = super().readiness()
        if not self.run_jobs:  # no engine here by design
            problems = [p for p in problems if not p.startswith("the engine worker is")]
        return problems

    # -- commands -----------------------------------------------------------------------------
    def cancel(self, job_id: str) -> str | None:
        done = super().cancel(job_id)
        if done is not None:
            return done
        job = self.store.get(job_id)
        if job is None or job.status != "processing":
            return None
        self.cluster.request_cancel(job_id)  # its worker reads it within LIVE_SECONDS
        return "cancelling"

    @property
    def _relays(self) -> bool:
        return any(t.name == "sdcpp-relay" for t in self._threads)

    def workers(self) -> list[dict[str, Any]]:
        """Every worker on this database (``/api/status``), lost ones flagged as such."""
        now = self.cluster.now()
        return [w.to_dict(now, self.settings.lease_seconds) for w in self.cluster.workers()]

    def view(self, job: Job) -> dict[str, Any]:
        stored = self.remote.get(job.id)
        if stored is None or job.id in self.live or job.status != "processing":
            return super().view(job)
        return job_view(job, None, _StoredProgress(stored), self.output_url)  # type: ignore[arg-type]

    # -- worker side --------------------------------------------------------------------------
    def _run(self, job: Job) -> Job | None:
        if self.settings.threads and not self._relays:  # sdcpp worker --threads: this host's
            job = dataclasses.replace(
                job, params={**job.params, "n_threads": self.settings.threads}
            )
        try:
            self.cluster.report(job.id, self.worker_id, {"phase": "starting", "progress": 0.0})
        except Exception:  # progress is best effort; the lease is what counts
            logger.debug("could not write the job's first progress", exc_info=True)
        try:
            return super()._run(job)
        finally:
            try:
                self.cluster.ended(job.id, self.worker_id)
            except Exception:
                logger.debug("could not mark the job's end", exc_info=True)

    def _live_loop(self) -> None:
        beat_every = max(1, round(min(self.settings.lease_seconds / 3, 5.0) / LIVE_SECONDS))
        ticks = 0
        while not self._halt.wait(LIVE_SECONDS):
            ticks += 1
            try:
                self._report_running()
                if ticks % beat_every == 0:
                    self._beat()
            except Exception:  # the database is away: the lease decides, not this
                logger.debug("live report skipped", exc_info=True)

    def _report_running(self) -> None:
        job_id, kind = self.current, self.current_kind
        live = self.live.get(job_id) if job_id is not None else None
        if job_id is None or live is None:
            return
        view = {**live.view(), "has_preview": live.preview is not None}
        if self.cluster.report(job_id, self.worker_id, view) and self.current == job_id:
            logger.info("job %s: cancel requested through the database", job_id)
            self._runner(kind).cancel(job_id)

    def _beat(self) -> None:
        self.cluster.beat(
            self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            models=list(self.models),
            loaded=self.loaded_models,
            state="busy" if self.current else str(self.engine.state),
            current_job=self.current,
        )

    # -- API side -----------------------------------------------------------------------------
    def _relay_loop(self) -> None:
        while not self._halt.wait(LIVE_SECONDS):
            try:
                self._relay()
            except Exception:
                logger.debug("relay poll skipped", exc_info=True)

    def _relay(self) -> None:
        # Writers' clocks agree only to a few ms (each reads the database's): look back 2 s
        # and skip rows already relayed.
        rows = self.cluster.changes(self._since - 2.0)
        changed = False
        for row in rows:
            self._since = max(self._since, row.updated_at)
            if row.worker_id == self.worker_id or self._seen.get(row.job_id) == row.updated_at:
                continue  # this process's own dispatcher published it already
            self._seen[row.job_id] = row.updated_at
            if row.ended:
                self.remote.pop(row.job_id, None)
            elif row.worker_id:  # '' : a cancel request not yet seen by a worker
                self.remote[row.job_id] = row.progress
            self._publish_job(row.job_id)
            changed = True
        if changed:
            self._publish_queue()
        if len(self._seen) > 10_000:  # ended long ago: only the latest matter
            self._seen = dict(list(self._seen.items())[-1000:])


def job_service(
    settings: Settings,
    store: JobStoreApi,
    engine: Any,
    events: EventBus,
    runners: Mapping[str, Any] | None = None,
) -> JobService:
    """The job service ``create_app`` runs: ``ClusterJobService`` on a PostgreSQL queue
    (``--database``), else the single-process one."""
    if not settings.database_url:
        return JobService(settings, store, engine, events, runners)
    from .pgstore import PgJobStore

    if settings.worker_models and isinstance(store, PgJobStore):
        store.models = settings.worker_models  # claim only these models' jobs
    return ClusterJobService(
        settings,
        store,
        engine,
        events,
        runners,
        cluster=ClusterStore(settings.database_url),
        run_jobs=settings.run_worker,
        models=settings.worker_models,
    )
