"""A job as clients see it: seed 004's job fields (status "processing" while running), the
progress fields of ``progress`` and the architecture ``plan`` the job was queued with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .job_record import PLAN_KEY
from .progress import ProgressTracker, progress_fields
from .store import Job

__all__ = ["PLAN_KEY", "job_view"]


def job_view(
    job: Job,
    position: int | None,
    live: ProgressTracker | None,
    output_url: Callable[[str, str], str],
) -> dict[str, Any]:
    """``position``: in the queue (queued jobs); ``live``: the running job's progress;
    ``output_url(job_id, name)``: where a client downloads an output."""
    data: dict[str, Any] = {
        "id": job.id,
        "job_id": job.id,
        "type": job.kind,
        "status": job.status,
        "prompt": job.params.get("prompt", ""),
        "queued_time": job.created_at,
        "start_time": job.started_at,
        "end_time": job.finished_at,
        "position": position,
        "time_elapsed": None,
        **progress_fields(job.status, job.params, job.result, live),
        "plan": job.params.get(PLAN_KEY),
        "error": job.error,
        "outputs": [output_url(job.id, name) for name in job.outputs],
        "result": {k: v for k, v in job.result.items() if k != "progress"},
        "attempts": job.attempts,
        "crashes": job.crashes,
        "last_error": job.last_error,  # the latest crash or lost lease, even if re-queued
        "last_error_at": job.last_error_at,
    }
    if job.started_at and job.finished_at:
        data["time_elapsed"] = int((job.finished_at - job.started_at) * 1000)
    return data
