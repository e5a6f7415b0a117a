"""The native dialect (seed 004 / seed 002): HTTP only — parse, call a service, format."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from typing import Any

import orjson
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ... import __version__, cache_presets
from ...jobspec.limits import table as limits_table
from ...options import SampleMethod, Scheduler
from .. import model_info
from ..auth.identity import identity_of
from ..connlimits import event_stream
from ..errors import ApiError, job_error
from ..imaging import thumbnail
from ..jobs import FINISHED
from ..responses import FastJSONResponse
from ..schemas.native import (
    CancelRequest,
    ControlNetRequest,
    Img2ImgRequest,
    InpaintingRequest,
    Text2ImgRequest,
    UpscaleRequest,
    VideoGenerateRequest,
)

GENERATE_KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "text2img": ("txt2img", Text2ImgRequest),
    "img2img": ("img2img", Img2ImgRequest),
    "inpainting": ("inpainting", InpaintingRequest),
    "controlnet": ("controlnet", ControlNetRequest),
    "video": ("video", VideoGenerateRequest),
}


async def body(request: Request, model: type[BaseModel]) -> Any:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_PARAMETERS", "the body is not valid JSON") from None
    return model.model_validate(data)


def job_or_404(request: Request, job_id: str) -> Any:
    """The job, if the caller may see it: another user's job is as absent as a missing one."""
    job = request.app.state.jobs.store.get(job_id)
    if job is None or not identity_of(request.scope).may_see(job.owner):
        raise ApiError(404, "JOB_NOT_FOUND", f"job not found: {job_id}")
    return job


def _owner(request: Request) -> str | None:
    return identity_of(request.scope).job_owner


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
        return submit(kind, req, _owner(request))
    return await run_in_threadpool(submit, kind, req, _owner(request))


async def generate(request: Request) -> JSONResponse:
    """Queue a generation job (answers 202 with its job_id)."""
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if name not in GENERATE_KINDS:
        raise ApiError(404, "NOT_FOUND", f"no generator {name!r}")
    kind, model = GENERATE_KINDS[name]
    return _queued(await _submit(request, kind, await body(request, model)))


async def upscale(request: Request) -> JSONResponse:
    req = await body(request, UpscaleRequest)
    job = await run_in_threadpool(request.app.state.generation.submit_upscale, req, _owner(request))
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
            raise ApiError(409, "JOB_ACTIVE", str(exc)) from None
        return JSONResponse({"status": "success", "message": "Job deleted", "job_id": job.id})
    return FastJSONResponse(request.app.state.jobs.view(job))


async def queue_cancel(request: Request) -> JSONResponse:
    req = await body(request, CancelRequest)
    job_or_404(request, req.job_id)
    outcome = await run_in_threadpool(request.app.state.jobs.cancel, req.job_id)
    if outcome is None:
        raise ApiError(409, "JOB_NOT_CANCELLABLE", f"job {req.job_id} is not queued or running")
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
        raise ApiError(404, "NOT_FOUND", "no preview for this job (yet)")
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
        raise ApiError(404, "JOB_NOT_FOUND", f"job not found: {job_id}")
    return job


async def job_output(request: Request) -> Response:
    name = request.path_params["filename"]
    job = _output_job(request, request.path_params["job_id"], name)
    if name not in job.outputs:  # only names the job produced: no path tricks possible
        raise ApiError(404, "NOT_FOUND", f"no output {name!r} for job {job.id}")
    path = request.app.state.jobs.output_dir(job.id) / name
    if request.query_params.get("thumb") in ("1", "true", "yes"):
        try:
            size = int(request.query_params.get("size", 256))
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETERS", "size must be an integer") from None
        if not 50 <= size <= 500:
            raise ApiError(400, "INVALID_PARAMETERS", "size must be between 50 and 500")
        thumbs = request.app.state.settings.outputs_path / ".thumbs" / job.id
        path = await run_in_threadpool(thumbnail, path, thumbs / f"{name}.{size}.webp", size)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


# -- models and utilities -----------------------------------------------------------------
async def models_list(request: Request) -> JSONResponse:
    q = request.query_params
    registry = request.app.state.registry
    loaded = request.app.state.jobs.loaded_models

    def build() -> dict[str, Any]:
        limit = int(q.get("limit", 50))
        page = model_info.list_models(
            registry,
            loaded,
            type=q.get("type") or None,
            search=q.get("search") or None,
            sort_by=q.get("sort_by", "name"),
            sort_order=q.get("sort_order", "asc"),
            limit=limit or None,
            page=int(q.get("page", 1)),
        )
        return {
            "models": [
                {**e.to_dict(), "loaded": model_info.is_loaded(registry, e, loaded)}
                for e in page.items
            ],
            "total": page.total,
            "page": page.page,
            "limit": limit,
        }

    try:
        return JSONResponse(await run_in_threadpool(build))
    except ValueError as exc:
        raise ApiError(400, "INVALID_PARAMETERS", str(exc)) from None


async def models_types(request: Request) -> JSONResponse:
    from ...registry import ModelType

    return JSONResponse({"types": [(t.name or str(t.value)).lower() for t in ModelType]})


async def models_refresh(request: Request) -> JSONResponse:
    report = await run_in_threadpool(request.app.state.registry.refresh)
    return JSONResponse(
        {
            "message": "Model refresh completed",
            "models_found": len(report.found),
            "models_updated": len(report.updated),
            "models_removed": len(report.removed),
            **report.to_dict(),  # found/updated/removed: [{id, path}], total
        }
    )


async def samplers(request: Request) -> JSONResponse:
    return JSONResponse({"samplers": [m.value for m in SampleMethod]})


async def schedulers(request: Request) -> JSONResponse:
    return JSONResponse({"schedulers": [s.value for s in Scheduler]})


async def parameters(request: Request) -> JSONResponse:
    """Every bounded generation field from the one limits table (``sdcpp.jobspec.limits``),
    the engine's samplers and schedulers, and the step-cache presets and modes per family."""
    return JSONResponse(
        {
            "parameters": limits_table(),
            "samplers": [m.value for m in SampleMethod],
            "schedulers": [s.value for s in Scheduler],
            "output_formats": ["png", "jpeg", "webp"],
            "cache": {
                family.value: cache_presets.available(example)
                for family, example in cache_presets.FAMILY_EXAMPLES.items()
            },
        }
    )


async def validate(request: Request) -> JSONResponse:
    """A text2img body checked as a job would be: the schema, then the spec's limits (sizes
    the engine would change are refused naming the nearest valid ones)."""
    req = await body(request, Text2ImgRequest)
    req.to_spec().validate()  # SpecError -> 422 VALIDATION_ERROR (the error table)
    return JSONResponse({"valid": True, "parameters": req.model_dump(exclude_none=True)})


# -- live events --------------------------------------------------------------------------
def _visible(identity: Any, event: dict[str, Any]) -> bool:
    """Job events reach the job's owner and admins; queue and system events reach everyone."""
    return "owner" not in event or identity.may_see(event["owner"])


async def events_sse(request: Request) -> EventSourceResponse:
    job_filter = request.path_params.get("job_id")
    if job_filter:
        job_or_404(request, job_filter)
        return event_stream(request, _job_stream(request, job_filter))
    identity = identity_of(request.scope)

    async def stream() -> Any:
        async with request.app.state.events.subscribe() as queue:
            while True:
                event = await queue.get()
                if not _visible(identity, event):
                    continue
                # orjson: the job's final event is on its client's critical path
                yield {"event": event["type"], "data": orjson.dumps(event["data"]).decode()}

    return event_stream(request, stream())  # a client that stops reading is dropped


JOB_STREAM_CHECK = 5.0  # seconds without an event before a job's stream reads the store again


async def _job_stream(request: Request, job_id: str) -> Any:
    """One job's events: its current state at once, then its updates; the stream ends after
    the job's final state (at once for a job that has ended, or was deleted)."""
    jobs = request.app.state.jobs

    def current() -> dict[str, Any] | None:
        job = jobs.store.get(job_id)
        return None if job is None else {"type": "job_update", "data": jobs.view(job)}

    # Subscribed before reading the state, so no update falls between the two.
    async with request.app.state.events.subscribe() as queue:
        event = current()
        while event is not None:
            if event["data"].get("job_id") == job_id:
                yield {"event": event["type"], "data": orjson.dumps(event["data"]).decode()}
                if event["type"] == "job_update" and event["data"].get("status") in FINISHED:
                    return
            event = None
            while event is None:
                try:
                    event = await asyncio.wait_for(queue.get(), JOB_STREAM_CHECK)
                except TimeoutError:  # the final event may have been dropped (a slow reader)
                    latest = current()
                    if latest is None:
                        return  # deleted
                    if latest["data"].get("status") in FINISHED:
                        event = latest


async def events_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    state = websocket.app.state
    await websocket.send_json(
        {"type": "system_update", "data": {"status": "connected", "version": __version__}}
    )
    identity = identity_of(websocket.scope)
    try:
        async with state.events.subscribe() as queue:
            while True:
                event = await queue.get()
                if _visible(identity, event):
                    message = {"type": event["type"], "data": event["data"]}
                    await websocket.send_text(orjson.dumps(message).decode())
    except (WebSocketDisconnect, RuntimeError):
        return


# (method, route path) -> request body model, for the OpenAPI document
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    **{("POST", f"/api/generate/{name}"): model for name, (_, model) in GENERATE_KINDS.items()},
    ("POST", "/api/generate/upscale"): UpscaleRequest,
    ("POST", "/api/v1/generate"): Text2ImgRequest,
    ("POST", "/api/queue/cancel"): CancelRequest,
    ("POST", "/api/validate"): Text2ImgRequest,
}


def routes() -> list[BaseRoute]:
    return [
        Route("/api/generate/upscale", upscale, methods=["POST"]),
        *(
            Route(f"/api/generate/{name}", generate, methods=["POST"], name=f"generate_{name}")
            for name in GENERATE_KINDS
        ),
        Route("/api/generate/{kind:str}", generate, methods=["POST"]),  # unknown kinds: 404
        Route("/api/v1/generate", generate_sync, methods=["POST"]),
        Route("/api/v1/generate/{job_id:str}", generate_result),
        Route("/api/queue/status", queue_status),
        Route("/api/queue/job/{job_id:str}", queue_job, methods=["GET", "DELETE"]),
        Route("/api/queue/job/{job_id:str}/preview", job_preview),
        Route("/api/queue/job/{job_id:str}/output/{filename:str}", job_output),
        Route("/api/v1/jobs/{job_id:str}/output/{filename:str}", job_output),
        Route("/api/queue/cancel", queue_cancel, methods=["POST"]),
        Route("/api/queue/clear", queue_clear, methods=["POST"]),
        Route("/api/models", models_list),
        Route("/api/v1/models", models_list),
        Route("/api/models/types", models_types),
        Route("/api/models/refresh", models_refresh, methods=["POST"]),
        Route("/api/samplers", samplers),
        Route("/api/schedulers", schedulers),
        Route("/api/parameters", parameters),
        Route("/api/validate", validate, methods=["POST"]),
        Route("/api/events", events_sse),
        Route("/api/events/{job_id:str}", events_sse),
        WebSocketRoute("/ws", events_ws),
    ]
