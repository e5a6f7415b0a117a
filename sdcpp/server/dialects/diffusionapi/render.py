"""Seed 001's answers: the queue-status shape and its error envelope
``{"status": "error", "error": message}``, from the one error table."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from ...errors import ApiError, _lookup, _validation_message

_STATES = {
    "queued": "queued",
    "processing": "processing",
    "completed": "done",
    "failed": "error",
    "cancelled": "error",
}


def error(exc: Exception) -> JSONResponse:
    """Any exception as seed 001's error body, with the one table's HTTP status."""
    if isinstance(exc, ApiError):
        status, message = exc.status, exc.message
    elif isinstance(exc, ValidationError):
        status, message = 422, _validation_message(exc)
    elif isinstance(exc, ValueError):
        status, message = 400, str(exc)
    else:
        status, _ = _lookup(exc)
        message = str(exc) if status != 500 else "internal server error"
    return JSONResponse({"status": "error", "error": message}, status_code=status)


def progress(view: dict[str, Any], params: dict[str, Any]) -> tuple[float, str]:
    """(percent, phase). With hires the first pass fills 0-50 and the second 50-100: the
    engine reports each pass's own step count, so a pass whose total is not the first pass's
    steps is the hires one."""
    status = view["status"]
    if status == "completed":
        return 100.0, "done"
    if status != "processing":
        return 0.0, status
    fraction = float(view.get("progress") or 0.0)
    if not params.get("hires"):
        return round(100 * fraction, 1), "generation"
    if view.get("total_steps") == params.get("steps"):
        return round(50 * fraction, 1), "initial generation"
    return round(50 + 50 * fraction, 1), "upscaling"


def queue_status(
    job: Any, view: dict[str, Any], payload: dict[str, Any] | None, folder: Path
) -> dict[str, Any]:
    percent, phase = progress(view, job.params)
    data: dict[str, Any] = {
        "status": "success",
        "job_id": job.id,
        "progress": percent,
        "current_phase": phase,
        "state": _STATES.get(job.status, job.status),
        "error": job.error,
    }
    if job.status != "completed" or not job.outputs:
        return data
    path = folder / job.outputs[0]
    jpg = job.params.get("output_format") == "jpeg"
    data.update(
        {
            "payload": payload,
            "image": base64.b64encode(path.read_bytes()).decode(),
            "output_path": str(path),
            "width": job.result.get("width") or _size(path)[0],
            "height": job.result.get("height") or _size(path)[1],
            "file_type": "jpg" if jpg else "png",
            "jpeg_quality": job.params.get("output_quality") if jpg else None,
            "generation_time_sec": job.result.get("generation_time"),
            # The engine runs in a worker process that reports no memory figures yet: null
            # rather than a made-up number.
            "memory_before_mb": job.result.get("memory_before_mb"),
            "memory_after_mb": job.result.get("memory_after_mb"),
        }
    )
    return data


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size
