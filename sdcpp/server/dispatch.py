"""The dispatcher: the thread of ``JobService`` that claims queued jobs in FIFO order, runs
each through its runner (the engine client, or a kind's own: ``convert``), keeps live progress
and publishes it, and writes each job's end to the store.

The params it sends are the stored job's (``Job.params``: derived from the job's spec by
``job_record.job_params``), less the plan, which is for people.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .job_paths import JobFiles
from .job_record import PLAN_KEY
from .logs import job_context
from .progress import ProgressTracker
from .store import Job

logger = logging.getLogger("sdcpp.server.jobs")  # one logger for the whole service

FINISHED = ("completed", "failed", "cancelled")


class Dispatcher(JobFiles):
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


def _log_end(job: Job | None) -> None:
    """One line per finished job: failures at WARNING with their error, the rest at INFO."""
    if job is None or job.status not in FINISHED:
        return
    took = (job.finished_at or 0) - (job.started_at or job.finished_at or 0)
    if job.status == "failed":
        logger.warning("job %s (%s) failed after %.2f s: %s", job.id, job.kind, took, job.error)
    else:
        logger.info("job %s (%s) %s in %.2f s", job.id, job.kind, job.status, took)
