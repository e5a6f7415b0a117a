"""Native generation routes (seed 004): queue a job (202 with its id), or wait for the images
(``/api/v1/generate``). HTTP only: parse, call the generation service, format."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import job_error
from ..exceptions import NotFound
from ..jobs import FINISHED
from ..responses import FastJSONResponse
from ..schemas.native import (
    ControlNetRequest,
    Img2ImgRequest,
    InpaintingRequest,
    Text2ImgRequest,
    UpscaleRequest,
    VideoGenerateRequest,
)
from .common import body, job_or_404, owner_of

GENERATE_KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "text2img": ("txt2img", Text2ImgRequest),
    "img2img": ("img2img", Img2ImgRequest),
    "inpainting": ("inpainting", InpaintingRequest),
    "controlnet": ("controlnet", ControlNetRequest),
    "video": ("video", VideoGenerateRequest),
}


DISCONNECT_CHECK = 0.5  # seconds between checks that a waiting /api/v1/generate client is there


# -- generation ---------------------------------------------------------------------------
def _queued(job: Any) -> JSONResponse:
    return FastJSONResponse(
        {
            "request_id": job.id,
            "job_id": job.id,
            "status": "queued",
            "message": "Generation request queued successfully",
        },
        status_code=202,
    )


async def _submit(request: Request, kind: str, req: BaseModel) -> Any:
    """Queue ``req``: committed to the store before this returns (and before any answer)."""
    submit = request.app.state.generation.submit
    if type(req) is Text2ImgRequest:
        # No image to decode: a few registry reads and one SQLite insert (~0.3 ms), cheaper
        # than the two thread hops around them (~0.45 ms measured), and the job reaches the
        # worker that much sooner.
        return submit(kind, req, owner_of(request))
    return await run_in_threadpool(submit, kind, req, owner_of(request))


async def generate(request: Request) -> JSONResponse:
    """Queue a generation job (answers 202 with its job_id)."""
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if name not in GENERATE_KINDS:
        raise NotFound(f"no generator {name!r}")
    kind, model = GENERATE_KINDS[name]
    return _queued(await _submit(request, kind, await body(request, model)))


async def upscale(request: Request) -> JSONResponse:
    req = await body(request, UpscaleRequest)
    job = await run_in_threadpool(
        request.app.state.generation.submit_upscale, req, owner_of(request)
    )
    return _queued(job)


async def generate_sync(request: Request) -> JSONResponse:
    """Seed 002's /api/v1/generate: queue like any job (no jumping), wait for the result."""
    req = await body(request, Text2ImgRequest)
    jobs = request.app.state.jobs
    # Subscribed before the job exists, so its final event cannot slip past.
    async with request.app.state.events.subscribe() as events:
        job = await _submit(request, "txt2img", req)
        while (current := jobs.store.get(job.id)).status not in FINISHED:
            if await request.is_disconnected():
                jobs.cancel(job.id)
                return JSONResponse({"job_id": job.id, "status": "cancelled"}, status_code=499)
            await _job_ended(events, job.id, timeout=DISCONNECT_CHECK)
    return JSONResponse(await run_in_threadpool(_sync_result, request, current))


async def _job_ended(events: asyncio.Queue[dict[str, Any]], job_id: str, timeout: float) -> None:
    """Wait until an event says ``job_id`` ended, or ``timeout`` passes; the store has the
    last word (the event queue drops old events when a subscriber falls behind)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                event = await events.get()
                data = event["data"]
                if data.get("job_id") == job_id and data.get("status") in FINISHED:
                    return


def _sync_result(request: Request, job: Any) -> dict[str, Any]:
    if job.status != "completed":
        raise job_error(job)  # the status the error table gives its code, as on every route
    import base64

    folder = request.app.state.jobs.output_dir(job.id)
    seeds = job.result.get("seeds", [])
    params = job.result.get("parameters", [])
    images = [
        {
            "data": base64.b64encode((folder / name).read_bytes()).decode(),
            "seed": seeds[i] if i < len(seeds) else None,
            "parameters": params[i] if i < len(params) else None,
        }
        for i, name in enumerate(job.outputs)
    ]
    return {
        "job_id": job.id,
        "status": "completed",
        "images": images,
        "generation_time": job.result.get("generation_time"),
    }


async def generate_result(request: Request) -> JSONResponse:
    job = job_or_404(request, request.path_params["job_id"])
    if job.status == "completed":
        return JSONResponse(await run_in_threadpool(_sync_result, request, job))
    return FastJSONResponse(request.app.state.jobs.view(job))
