"""Native queue routes: status, one job (GET/DELETE), cancel, clear, its preview and outputs."""

from __future__ import annotations

import mimetypes
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..auth.identity import identity_of
from ..exceptions import BadRequest, JobActive, JobNotCancellable, JobNotFound, NotFound
from ..imaging import thumbnail
from ..responses import FastJSONResponse
from ..schemas.native import (
    CancelRequest,
)
from .common import body, job_or_404


# -- queue --------------------------------------------------------------------------------
async def queue_status(request: Request) -> JSONResponse:
    """The queue and its most recent jobs.

    Built on the event loop, not in the thread pool: a few indexed SQLite reads take well under
    a millisecond, less than the hop to a worker thread costs, and polled endpoints like this
    one are what clients hit hardest while a job generates."""
    jobs = request.app.state.jobs
    identity = identity_of(request.scope)
    owner = None if identity.is_admin else identity.user_id  # users list their own jobs

    def build() -> dict[str, Any]:
        counts = jobs.store.counts()
        listed = jobs.store.list(limit=int(request.query_params.get("limit", 100)), owner=owner)
        return {
            "queue": {
                "size": counts.get("queued", 0),
                "active_generations": counts.get("processing", 0),
                "running": jobs.accepting,
                "jobs": [jobs.view(j) for j in listed],
            }
        }

    return FastJSONResponse(build())


async def queue_job(request: Request) -> Response:
    job = job_or_404(request, request.path_params["job_id"])
    if request.method == "DELETE":
        try:
            await run_in_threadpool(request.app.state.jobs.delete, job.id)
        except ValueError as exc:
            raise JobActive(str(exc)) from None
        return JSONResponse({"status": "success", "message": "Job deleted", "job_id": job.id})
    return FastJSONResponse(request.app.state.jobs.view(job))


async def queue_cancel(request: Request) -> JSONResponse:
    req = await body(request, CancelRequest)
    job_or_404(request, req.job_id)
    outcome = await run_in_threadpool(request.app.state.jobs.cancel, req.job_id)
    if outcome is None:
        raise JobNotCancellable(f"job {req.job_id} is not queued or running")
    return JSONResponse(
        {
            "status": "success",
            "message": "Job cancelled successfully"
            if outcome == "cancelled"
            else "Cancellation requested",
            "job_id": req.job_id,
            "state": outcome,
        }
    )


async def queue_clear(request: Request) -> JSONResponse:
    identity = identity_of(request.scope)
    owner = None if identity.is_admin else identity.user_id  # users clear their own jobs
    count = await run_in_threadpool(request.app.state.jobs.clear, owner)
    return JSONResponse(
        {"status": "success", "message": "Queue cleared successfully", "cleared": count}
    )


async def job_preview(request: Request) -> Response:
    job = job_or_404(request, request.path_params["job_id"])
    live = request.app.state.jobs.live.get(job.id)
    if live is None or live.preview is None:
        raise NotFound("no preview for this job (yet)")
    return Response(live.preview, media_type="image/png")


def _output_job(request: Request, job_id: str, name: str) -> Any:
    """Outputs are public (seed 004) but, with auth on, only through the owner's (or an
    admin's) credentials or a signed capability URL from the job's JSON."""
    job = request.app.state.jobs.store.get(job_id)
    if job is not None and not identity_of(request.scope).may_see(job.owner):
        signer = request.app.state.auth.signer
        q = request.query_params
        if signer is None or not signer.verify(job_id, name, q.get("exp"), q.get("sig")):
            job = None
    if job is None:
        raise JobNotFound(f"job not found: {job_id}")
    return job


async def job_output(request: Request) -> Response:
    name = request.path_params["filename"]
    job = _output_job(request, request.path_params["job_id"], name)
    if name not in job.outputs:  # only names the job produced: no path tricks possible
        raise NotFound(f"no output {name!r} for job {job.id}")
    path = request.app.state.jobs.output_dir(job.id) / name
    if request.query_params.get("thumb") in ("1", "true", "yes"):
        try:
            size = int(request.query_params.get("size", 256))
        except ValueError:
            raise BadRequest("size must be an integer") from None
        if not 50 <= size <= 500:
            raise BadRequest("size must be between 50 and 500")
        thumbs = request.app.state.settings.outputs_path / ".thumbs" / job.id
        path = await run_in_threadpool(thumbnail, path, thumbs / f"{name}.{size}.webp", size)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
