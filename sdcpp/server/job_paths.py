"""Where a job's files live and how a job looks to clients: the part of ``JobService`` the
dispatcher, routers and dialects share (output and input folders, download URLs, the view).

The service's state is declared here, once, for the parts that build on it (``dispatch``,
``leases``, ``jobs``).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import EventBus
from .job_views import job_view
from .progress import ProgressTracker
from .settings import Settings
from .store import Job
from .store_api import JobStoreApi


class JobFiles:
    # The service's state, set by ``JobService.__init__`` (jobs.py); declared here, where the
    # first of its parts needs it.
    settings: Settings
    store: JobStoreApi
    engine: Any
    events: EventBus
    runners: dict[str, Any]  # job kind -> runner; every other kind: the engine
    live: dict[str, ProgressTracker]
    preview_watchers: dict[str, Callable[[int, bytes], None]]
    current: str | None
    current_kind: str | None
    worker_id: str
    _interrupted: bool
    _restart_engine: bool
    _wake: threading.Event
    _stop: threading.Event
    _last_progress: float
    _timed_out: str | None

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

    def _cleanup_inputs(self, job_id: str) -> None:
        shutil.rmtree(self.input_dir(job_id), ignore_errors=True)
