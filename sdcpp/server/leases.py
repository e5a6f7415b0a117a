"""Lease keeping for ``JobService``: the heartbeat thread renews the running job's lease and
sweeps other holders' expired ones; the hang watchdog kills a job that reports nothing for
``job_timeout`` seconds."""

from __future__ import annotations

import logging
import time

from .dispatch import Dispatcher

logger = logging.getLogger("sdcpp.server.jobs")


class LeaseKeeper(Dispatcher):
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
