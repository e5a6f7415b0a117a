"""The job service: the one place that talks to the job store and the engine worker.

A dispatcher thread (``dispatch.Dispatcher``) claims queued jobs in FIFO order and runs each
through the engine client (which blocks until the job ends); live progress is kept in memory
and published to event subscribers; final states are written to the store. Routers and
dialects change jobs only through this service (submit, cancel, clear); they read job records
from the store and the worker's state (pid, restarts) for status pages, and never write either.

Some kinds run elsewhere than the engine worker: ``runners`` maps a kind to an object with the
engine client's ``run``/``cancel``/``stop`` (``convert`` jobs: a child process per job), so
they share the queue, its order, progress events and cancellation with generation jobs.

The service is built in parts: ``job_paths.JobFiles`` (folders, URLs, the client view),
``dispatch.Dispatcher`` (the dispatcher thread), ``leases.LeaseKeeper`` (heartbeat and hang
watchdog), and here the lifecycle and the commands.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .dispatch import FINISHED
from .errors import shutting_down
from .events import EventBus
from .job_views import PLAN_KEY
from .leases import LeaseKeeper
from .progress import ProgressTracker
from .settings import Settings
from .store import Job
from .store_api import JobStoreApi

logger = logging.getLogger(__name__)

__all__ = ["FINISHED", "PLAN_KEY", "JobService"]


class JobService(LeaseKeeper):
    def __init__(
        self,
        settings: Settings,
        store: JobStoreApi,
        engine: Any,
        events: EventBus,
        runners: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.events = events
        self.runners = dict(runners or {})  # job kind -> runner; every other kind: the engine
        self.live: dict[str, ProgressTracker] = {}
        # job id -> called (step, png) on the dispatcher thread for each preview of that job
        self.preview_watchers: dict[str, Callable[[int, bytes], None]] = {}
        self.current: str | None = None
        self.current_kind: str | None = None
        self.accepting = True
        self._interrupted = False
        self._restart_engine = False  # set when shutdown stops the worker under a running job
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._dispatch_loop, name="sdcpp-dispatcher", daemon=True
        )
        # The lease holder's name: unique per process, readable in a job record (host:pid:tag),
        # and the same shape a PostgreSQL worker on another host will use.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._last_progress = time.monotonic()  # the hang watchdog's clock
        self._timed_out: str | None = None  # the job the watchdog killed
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="sdcpp-heartbeat", daemon=True
        )

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        # SQLite: every lease in the store is dead, this process holds the data dir lock
        # (datadir.py). A shared queue (PostgreSQL): only expired ones, others are running.
        requeued, failed = self.store.recover(
            max_attempts=self.settings.max_crashes, expired_only=self.store.shared
        )
        if requeued or failed:
            logger.warning(
                "recovered after restart: %d re-queued, %d failed", len(requeued), len(failed)
            )
        self._thread.start()
        self._heartbeat.start()

    def drain(self) -> None:
        """First step of a shutdown: take no new jobs (503 + Retry-After); reads go on."""
        self.accepting = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the running job to end; True when none runs."""
        deadline = time.monotonic() + timeout
        while self.current is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.current is None

    def interrupt(self) -> None:
        """Cancel the running job at its next step; it goes back to the queue (``_run``)."""
        self.accepting = False
        self._interrupted = True
        self._stop.set()
        self._wake.set()
        job_id = self.current
        if job_id is not None:
            self._cancel_running(job_id, kill_after=1.0)  # a hung job must not hold the exit

    def stop(self, grace: float | None = None) -> None:
        """Stop taking jobs; give the running one ``grace`` seconds, then stop the worker and
        leave that job 'processing' so ``recover()`` re-queues it at the next start."""
        self.accepting = False
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.settings.shutdown_grace if grace is None else grace)
        if self._thread.is_alive():
            logger.warning("job %s still running at shutdown; it will be re-queued", self.current)
            self.interrupt()
            self._thread.join(timeout=2.0)  # a cancel lands at the next step
        if self._thread.is_alive():
            self.engine.stop(timeout=5)
            for runner in self.runners.values():
                runner.stop(timeout=5)
            self._thread.join(timeout=10)

    # -- commands ------------------------------------------------------------------------
    def submit(
        self, kind: str, params: dict[str, Any], owner: str | None = None, job_id: str | None = None
    ) -> Job:
        if not self.accepting:
            raise shutting_down(int(self.settings.shutdown_grace) + 1)
        job = self.store.create(
            kind,
            params,
            owner=owner,
            max_queue=self.settings.max_queue,
            job_id=job_id,
            max_per_owner=self.settings.max_queue_per_user,
        )
        self._publish_queue()
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> str | None:
        """'cancelled' for a queued job, 'cancelling' for the running one, None otherwise."""
        if self.store.cancel(job_id) is not None:
            self._cleanup_inputs(job_id)
            self._publish_job(job_id)
            self._publish_queue()
            return "cancelled"
        if self.current == job_id and self._runner(self.current_kind).cancel(job_id):
            return "cancelling"
        return None

    def clear(self, owner: str | None = None) -> int:
        count = self.store.clear_queued(owner=owner)
        self._publish_queue()
        return count

    def delete(self, job_id: str) -> bool:
        deleted = self.store.delete(job_id)
        if deleted:
            shutil.rmtree(self.output_dir(job_id), ignore_errors=True)
            self._cleanup_inputs(job_id)
        return deleted

    def readiness(self) -> list[str]:
        """Why this server should not be sent work now (empty: ready): the worker, the
        database, a shutdown. Blocking (a real database write)."""
        problems = []
        state = self.engine.state
        if state not in ("ready", "busy"):
            problems.append(f"the engine worker is {state}")
        if (problem := self.store.write_problem()) is not None:
            problems.append(problem)
        if not self.accepting:
            problems.append("the server is shutting down")
        return problems

    def request_engine_restart(self) -> None:
        """Restart the worker between jobs (never under a running one)."""
        self._restart_engine = True
        self._wake.set()

    def load_model(self, params: dict[str, Any]) -> dict[str, Any]:
        """Load a model in the worker; blocking. It takes the engine's run lock, so it waits for
        the running job (and may let queued jobs that win the lock go first). Returns the
        engine's final event: ``loaded``, ``failed`` or ``crashed``."""
        return dict(self.engine.load(params))

    def unload_model(self, model: str | None = None) -> dict[str, Any]:
        """Close that loaded model file (None: every one) once the running job has finished;
        blocking."""
        return dict(self.engine.unload(model))

    @property
    def loaded_model(self) -> str | None:
        return getattr(self.engine, "loaded_model", None)

    @property
    def loaded_models(self) -> list[str]:
        """Every model file the worker holds, most recently used first."""
        models = getattr(self.engine, "loaded_models", None)
        if models is None:  # an engine with a single slot
            return [self.loaded_model] if self.loaded_model else []
        return list(models)

    def model_users(self, path: str) -> list[str]:
        """Ids of queued or running jobs whose main model file is ``path``."""
        active = self.store.list(status=["queued", "processing"], limit=10_000)
        return [
            job.id
            for job in active
            if path in (job.params.get("model"), job.params.get("diffusion_model"))
        ]

    def active_params(self, kind: str) -> list[dict[str, Any]]:
        """Params of the queued and running jobs of one kind."""
        active = self.store.list(status=["queued", "processing"], limit=10_000)
        return [job.params for job in active if job.kind == kind]
