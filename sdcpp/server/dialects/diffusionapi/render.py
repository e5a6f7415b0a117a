"""Seed 001's answers: the queue-status shape and its error envelope
``{"status": "error", "error": message}``, from the one error table."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from ...errors import error_headers, lookup

_STATES = {
    "queued": "queued",
    "processing": "processing",
    "completed": "done",
    "failed": "error",
    "cancelled": "error",
}


def error(exc: Exception) -> JSONResponse:
    """Any exception as seed 001's error body, with the one table's HTTP status."""
    status, _, message = lookup(exc, input_errors=True)
    body = {"status": "error", "error": message}
    return JSONResponse(body, status_code=status, headers=error_headers(exc))


def progress(view: dict[str, Any], params: dict[str, Any]) -> tuple[float, str]:
    """(percent, phase). With hires the first pass fills 0-50 and the second 50-100. The second
    pass is told by the job's live view: its phase is ``hires``, or it is the second
    ``sampling`` phase (``sampling_pass``), so equal step counts cannot confuse the two;
    between them (decoding, the ESRGAN upscale) the figure stays at 50."""
    status = view["status"]
    if status == "completed":
        return 100.0, "done"
    if status != "processing":
        return 0.0, status
    total = int(view.get("total_steps") or 0)
    fraction = min(1.0, int(view.get("current_step") or 0) / total) if total else 0.0
    phase, passes = view.get("phase"), int(view.get("sampling_pass") or 0)
    sampling = phase in ("sampling", "hires")
    if not sampling and phase != "decoding" and passes == 0:
        return 0.0, "loading"
    if not params.get("hires"):
        return round(100 * fraction, 1) if sampling else 99.0, "generation"
    if phase == "hires" or passes >= 2:
        return round(50 + 50 * fraction, 1) if sampling else 99.0, "upscaling"
    steps = int(params.get("steps") or 0) * int(params.get("batch_count") or 1)
    if phase == "sampling" and total in (0, steps):
        return round(50 * fraction, 1), "initial generation"
    return 50.0, "upscaling"  # decoding, or the ESRGAN model's tiles (reported as steps)


def refined(
    base: Any, base_view: dict[str, Any], refiner: Any, view: dict[str, Any] | None
) -> tuple[float, str]:
    """(percent, phase) of a request with a refiner: the base pass fills 0-50 (with its own
    hires split inside), the refiner job 50-100 ("refining")."""
    if base.status != "completed":
        percent, phase = progress(base_view, base.params)
        return round(percent / 2, 1), phase
    if refiner is None or view is None or refiner.status == "queued":
        return 50.0, "refining"
    if refiner.status == "completed":
        return 100.0, "done"
    return round(50 + 50 * float(view.get("progress") or 0.0), 1), "refining"


def queue_status(
    job: Any,
    view: dict[str, Any],
    payload: dict[str, Any] | None,
    folder: Path,
    *,
    shown_id: str | None = None,
    shown: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """Seed 001's status of ``job`` (the job holding the final image), reported under
    ``shown_id`` (the id the client got) with ``shown`` (percent, phase) when given."""
    percent, phase = shown if shown is not None else progress(view, job.params)
    data: dict[str, Any] = {
        "status": "success",
        "job_id": shown_id or job.id,
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
            "width": job.result.get("width") or image_size(path)[0],
            "height": job.result.get("height") or image_size(path)[1],
            "file_type": "jpg" if jpg else "png",
            "jpeg_quality": job.params.get("output_quality") if jpg else None,
            "generation_time_sec": job.result.get("generation_time"),
            # The worker's resident set (MiB, /proc VmRSS) before loading and sampling, and
            # after the images exist (model still loaded); null where /proc is unreadable.
            "memory_before_mb": job.result.get("memory_before_mb"),
            "memory_after_mb": job.result.get("memory_after_mb"),
        }
    )
    return data


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size
