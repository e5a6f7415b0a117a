"""The job service: the one place that talks to the job store and the engine worker.

A dispatcher thread claims queued jobs in FIFO order and runs each through the engine client
(which blocks until the job ends); live progress is kept in memory and published to event
subscribers; final states are written to the store. Routers and dialects change jobs only
through this service (submit, cancel, clear); they read job records from the store and the
worker's state (pid, restarts) for status pages, and never write either.

Some kinds run elsewhere than the engine worker: ``runners`` maps a kind to an object with the
engine client's ``run``/``cancel``/``stop`` (``convert`` jobs: a child process per job), so
they share the queue, its order, progress events and cancellation with generation jobs.
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
from pathlib import Path
from typing import Any

from .errors import shutting_down
from .events import EventBus
from .job_views import PLAN_KEY, job_view
from .logs import job_context
from .progress import ProgressTracker
from .settings import Settings
from .store import Job
from .store_api import JobStoreApi

logger = logging.getLogger(__name__)

FINISHED = ("completed", "failed", "cancelled")
__all__ = ["FINISHED", "PLAN_KEY", "JobService"]


class JobService:
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

    # -- queries -------------------------------------------------------------------------
    def output_url(self, job_id: str, name: str) -> str:
        """Where a client downloads an output; with auth on, create_app puts the auth service's
        signed capability URLs here."""
        return f"/api/queue/job/{job_id}/output/{name}"

    def output_dir(self, job_id: str) -> Path:
        return self.settings.outputs_path / job_id

    def input_dir(self, job_id: str) -> Path:
        return Path(self.settings.data_dir) / "inputs" / job_id

    def view(self, job: Job) -> dict[str, Any]:
        """The job as clients see it (``job_views.job_view``)."""
        position = self.store.position(job.id) if job.status == "queued" else None
        return job_view(job, position, self.live.get(job.id), self.output_url)

    # -- dispatcher ----------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            if self._restart_engine:
                self._restart_engine = False
                logger.warning("restarting the engine worker on request")
                self.engine.stop()
                self.engine.start()
                self.events.publish(
                    {
                        "type": "system_update",
                        "data": {"status": "worker_restarted", "pid": self.engine.pid},
                    }
                )
            try:
                job = self.store.claim_next(
                    self.worker_id, lease_seconds=self.settings.lease_seconds
                )
            except Exception as exc:  # the database is away (a PostgreSQL restart): take
                # nothing, try again shortly; the store reconnects by itself
                logger.warning("cannot claim jobs (%s); retrying in 1 s", exc)
                self._stop.wait(1.0)
                continue
            if job is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            ended: Job | None = None
            try:
                with job_context(job.id):  # every line this job causes carries its id
                    ended = self._run(job)
                    _log_end(ended)
            except Exception:  # the dispatcher must survive anything a job does
                logger.exception("job %s failed in the dispatcher", job.id)
                ended = self.store.finish(
                    job.id,
                    "failed",
                    error="internal error in the dispatcher",
                    worker_id=self.worker_id,
                )
            finally:
                self.current = self.current_kind = None
                self.live.pop(job.id, None)
                # The record the store returned, not a fresh read: the job's final state is
                # what its client waits for, and it goes out first.
                if ended is None:
                    self._publish_job(job.id)
                else:
                    self._publish_view(ended)
                self._publish_queue()
            if ended is not None and ended.status in FINISHED:
                self._cleanup_inputs(job.id)  # a job re-queued after a crash still needs them

    def _run(self, job: Job) -> Job | None:
        """Run ``job`` to its end and record that end; returns the stored record, or None when
        a shutdown interrupted it (it stays 'processing' and is re-queued at the next start)."""
        self.current, self.current_kind = job.id, job.kind
        self._last_progress = time.monotonic()
        live = self.live[job.id] = ProgressTracker(job.kind, job.params)
        self._publish_view(job)  # the record claim_next() returned: no read before the worker
        final = self._runner(job.kind).run(
            job.id,
            job.kind,
            {k: v for k, v in job.params.items() if k != PLAN_KEY},  # the plan is for people
            str(self.output_dir(job.id)),
            lambda event: self._on_event(job, event),
        )
        kind = final.get("type")
        if self._interrupted and kind != "done":
            # A shutdown stopped it: back to the queue, the attempt not counted.
            return self.store.release(job.id, self.worker_id, "stopped by a server shutdown")
        if self._timed_out == job.id:
            self._timed_out = None
            timeout = self.settings.job_timeout
            error = f"no progress for {timeout:g} s (--job-timeout): the worker was killed"
            result = {"code": "TIMEOUT", "progress": live.final("failed")}
            return self._finish(job.id, "failed", error=error, result=result)
        if kind == "done":
            return self._finish(
                job.id,
                "completed",
                outputs=list(final.get("outputs", [])),
                result={**final.get("result", {}), "progress": live.final("completed")},
            )
        if kind == "cancelled":
            result = {"progress": live.final("cancelled")}
            return self._finish(job.id, "cancelled", error="cancelled", result=result)
        if kind == "crashed":
            again = self.store.record_crash(
                job.id,
                str(final.get("error", "worker crashed")),
                max_crashes=self.settings.max_crashes,
                worker_id=self.worker_id,
            )
            logger.error("job %s: %s (now %s)", job.id, final.get("error"), again.status)
            self.events.publish(
                {
                    "type": "job_crash",
                    "data": {
                        "job_id": job.id,
                        "error": again.last_error,
                        "time": again.last_error_at,
                        "crashes": again.crashes,
                        "attempts": again.attempts,
                        "status": again.status,
                    },
                    "owner": job.owner,
                }
            )
            return again
        return self._finish(
            job.id,
            "failed",
            error=str(final.get("error", "failed")),
            result={"code": final.get("code", "INTERNAL_ERROR"), "progress": live.final("failed")},
        )

    def _finish(self, job_id: str, status: str, **end: Any) -> Job | None:
        """``store.finish`` while this worker holds the lease; None (and the result dropped)
        when its lease expired and the job went back to the queue or to another worker."""
        ended = self.store.finish(job_id, status, worker_id=self.worker_id, **end)
        if ended is None:
            logger.warning("job %s: lease lost before it ended %s; result dropped", job_id, status)
        return ended

    def _heartbeat_loop(self) -> None:
        """Renew the running job's lease; sweep other holders' expired leases; and kill a job
        that reported nothing for ``job_timeout`` seconds (the hang watchdog)."""
        interval = max(0.2, min(self.settings.lease_seconds / 3, 5.0))
        while not self._stop.wait(interval):
            try:
                job_id = self.current
                if job_id is not None:
                    self.store.renew_lease(job_id, self.worker_id, self.settings.lease_seconds)
                    self._watchdog(job_id)
                self.store.recover(
                    self.settings.max_crashes, expired_only=True, keep_owner=self.worker_id
                )
            except Exception:  # a closed store at shutdown, a busy database: try again later
                logger.debug("heartbeat skipped", exc_info=True)

    def _watchdog(self, job_id: str) -> None:
        timeout = self.settings.job_timeout
        if timeout <= 0 or self._timed_out == job_id:
            return
        if time.monotonic() - self._last_progress > timeout:
            logger.error("job %s: no progress for %.0f s; killing the worker", job_id, timeout)
            self._timed_out = job_id
            self._cancel_running(job_id, kill_after=0.5)

    def _cancel_running(self, job_id: str, kill_after: float) -> None:
        runner = self._runner(self.current_kind)
        if runner is self.engine:  # the engine client kills a worker that ignores a cancel
            runner.cancel(job_id, grace=kill_after)
        else:
            runner.cancel(job_id)

    def _runner(self, kind: str | None) -> Any:
        return self.runners.get(kind or "", self.engine)

    def _on_event(self, job: Job, event: dict[str, Any]) -> None:
        """Progress of the running job. Published from the claimed record plus live state:
        several events a second must not each read the database."""
        live = self.live.get(job.id)
        if live is None:
            return
        self._last_progress = time.monotonic()
        if event.get("type") == "progress":
            live.update(str(event.get("phase", "")), int(event["step"]), int(event["total"]))
            self._publish_view(job)
        elif event.get("type") == "preview":
            live.preview = event.get("png")
            # a client streaming this job's partial images (the OpenAI dialect's SSE)
            if (watch := self.preview_watchers.get(job.id)) is not None and live.preview:
                watch(int(event.get("step", 0)), live.preview)

    def _publish_job(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is not None:
            self._publish_view(job)

    def _publish_view(self, job: Job) -> None:
        # "owner" travels beside the data: subscribers see only their own jobs (auth)
        self.events.publish({"type": "job_update", "data": self.view(job), "owner": job.owner})

    def _publish_queue(self) -> None:
        counts = self.store.counts()
        self.events.publish(
            {
                "type": "queue_update",
                "data": {
                    "size": counts.get("queued", 0),
                    "active_generations": counts.get("processing", 0),
                    "counts": counts,
                },
            }
        )

    def _cleanup_inputs(self, job_id: str) -> None:
        shutil.rmtree(self.input_dir(job_id), ignore_errors=True)


def _log_end(job: Job | None) -> None:
    """One line per finished job: failures at WARNING with their error, the rest at INFO."""
    if job is None or job.status not in FINISHED:
        return
    took = (job.finished_at or 0) - (job.started_at or job.finished_at or 0)
    if job.status == "failed":
        logger.warning("job %s (%s) failed after %.2f s: %s", job.id, job.kind, took, job.error)
    else:
        logger.info("job %s (%s) %s in %.2f s", job.id, job.kind, job.status, took)
