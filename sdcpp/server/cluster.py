"""The job service of a process sharing a PostgreSQL queue with others (``--database``).

``ClusterJobService`` is ``JobService`` plus what crosses processes through the database
(``cluster_store``):

- as a worker (``sdcpp serve`` by default, ``sdcpp worker``): every ``LIVE_SECONDS`` it writes
  the running job's progress (and its latest preview, when it changed) and reads back its
  cancel request, which it passes to the engine; every heartbeat it renews its ``workers`` row
  (host, pid, models, current job). A NOTIFY (``cluster_notify``) wakes it at once for a
  queued job or a cancel request, so a cancel sent to any API process stops the job at the
  engine's next step; the polls are the fallback while the listener is disconnected.
- as an API process (every one, ``--no-worker`` ones included): a relay thread reads
  ``job_live`` when notified (every ``FALLBACK_SECONDS`` anyway, every ``LIVE_SECONDS``
  without a listener) and publishes what other processes' workers did on this process's event
  bus, so SSE, ``/ws`` and every dialect's progress route see a job that runs elsewhere; the
  job JSON, the dialects' progress and the preview route take its progress and preview from
  the same rows (``live.get`` falls back to them). A cancel of a job running elsewhere is
  written there for its worker.

With ``run_jobs=False`` (``sdcpp serve --no-worker``) there is no dispatcher: the process
only queues, reads and cancels; ``RemoteEngine`` stands in for the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .cluster_notify import Listener
from .cluster_store import LIVE_SECONDS, ClusterStore
from .events import EventBus
from .job_views import job_view
from .jobs import JobService
from .settings import Settings
from .store import Job
from .store_api import JobStoreApi

if TYPE_CHECKING:
    from prometheus_client.core import Metric

logger = logging.getLogger(__name__)

__all__ = ["ClusterJobService", "RemoteEngine", "job_service", "worker_metrics"]

DEVICE = "cpu"  # this build runs the engine on the CPU backend only (GET /api/system)
FALLBACK_SECONDS = 2.0  # the relay's poll while LISTEN works: only a lost notification waits


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

    def __init__(self, view: dict[str, Any], job_id: str, cluster: ClusterStore) -> None:
        self._view, self._job_id, self._cluster = view, job_id, cluster

    @property
    def preview(self) -> bytes | None:
        """Read when asked for (the preview route, A1111's current_image): the worker wrote it."""
        if not self._view.get("has_preview"):
            return None
        return self._cluster.read_preview(self._job_id)

    def view(self) -> dict[str, Any]:
        return dict(self._view)


class _LiveJobs(dict[str, Any]):
    """``JobService.live``: this process's running jobs; ``get`` falls back to a job running on
    another process's worker, as last written to the database, for every route that reads
    ``live.get(job_id)`` (dialects' progress, previews)."""

    def __init__(self, service: ClusterJobService) -> None:
        super().__init__()
        self._service = service

    def get(self, job_id: str, default: Any = None) -> Any:
        if job_id in self:
            return self[job_id]
        stored = self._service.remote.get(job_id)
        if stored is None:
            return default
        return _StoredProgress(stored, job_id, self._service.cluster)


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
        self.live = _LiveJobs(self)
        self._relay_wake = threading.Event()
        self._preview_sent: tuple[str, bytes] | None = None  # (job id, the last written)
        self.listener = Listener(cluster.url, self._on_notify)
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
        self.listener.start()
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float | None = None) -> None:
        if self.run_jobs:
            super().stop(grace)
        self._halt.set()
        self._relay_wake.set()
        self.listener.stop()
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
        progress = _StoredProgress(stored, job.id, self.cluster)
        return job_view(job, None, progress, self.output_url)  # type: ignore[arg-type]

    def _on_notify(self, kind: str, job_id: str) -> None:
        """The listener's thread: wake whoever the notification concerns."""
        if kind == "queued" and self.run_jobs:
            self._wake.set()  # the dispatcher claims now, not at its next poll
        elif kind == "cancel" and self.run_jobs and job_id == self.current:
            logger.info("job %s: cancel requested through the database", job_id)
            self._runner(self.current_kind).cancel(job_id)  # the engine stops at its next step
        elif kind in ("live", "cancel") and self._relays:
            self._relay_wake.set()

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
        preview = live.preview
        view = {**live.view(), "has_preview": preview is not None}
        if self.cluster.report(job_id, self.worker_id, view) and self.current == job_id:
            logger.info("job %s: cancel requested through the database", job_id)
            self._runner(kind).cancel(job_id)
        sent = self._preview_sent
        if preview is not None and (sent is None or sent[0] != job_id or sent[1] is not preview):
            self.cluster.preview(job_id, self.worker_id, preview)  # only when it changed
            self._preview_sent = (job_id, preview)

    def _beat(self) -> None:
        self.cluster.beat(
            self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            models=list(self.models),
            loaded=self.loaded_models,
            state="busy" if self.current else str(self.engine.state),
            current_job=self.current,
            device=DEVICE,
        )

    # -- API side -----------------------------------------------------------------------------
    def _relay_loop(self) -> None:
        while not self._halt.is_set():
            every = FALLBACK_SECONDS if self.listener.connected.is_set() else LIVE_SECONDS
            self._relay_wake.wait(every)
            self._relay_wake.clear()
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


def worker_metrics(workers: list[dict[str, Any]]) -> Iterator[Metric]:
    """``/metrics`` of every worker on the database (``workers()``'s rows): one info series
    each (host, device, models, loaded models, current job, state) and its heartbeat's age."""
    from prometheus_client.core import GaugeMetricFamily

    labels = ("worker", "host", "pid", "device", "state", "models", "loaded", "current_job")
    info = GaugeMetricFamily("sdcpp_cluster_worker", "A worker on the shared queue", labels=labels)
    age = GaugeMetricFamily(
        "sdcpp_cluster_worker_heartbeat_age_seconds",
        "Seconds since the worker's last heartbeat (over the lease: lost)",
        labels=("worker", "host"),
    )
    for w in workers:
        info.add_metric(
            (w["id"], w["host"], str(w["pid"]), w["device"], w["state"],
             ",".join(w["models"]), ",".join(w["loaded_models"]), w["current_job"] or ""),
            1,
        )  # fmt: skip
        age.add_metric((w["id"], w["host"]), float(w["heartbeat_age_s"]))
    yield info
    yield age
