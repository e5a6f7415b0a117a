"""Seed 001's routes: HTTP only (parse, call the submitter or the registry, render)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ....registry import ModelType
from ...auth.identity import identity_of
from ...auth.permissions import OWNED, PUBLIC, USER
from ...exceptions import BadRequest, JobNotFound
from ...jobs import FINISHED
from ...routing import Endpoint, bodies, starlette_routes
from .. import enveloped
from . import render
from .schemas import Txt2ImgRequest
from .submit import submit, submit_refiner

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_UPSCALERS = ModelType.ESRGAN | ModelType.UPSCALER
_TASKS: set[asyncio.Task[None]] = set()  # refiner chains in flight (kept from the GC)


# every failure in the seed's envelope, whatever raised it
_seed_errors = enveloped(render.error)


def _family(architecture: str) -> str:
    """Seed 001 knows "standard" and "sdxl": SDXL-family detections are "sdxl", every other
    family "standard" (its detection id is in "architecture")."""
    return "sdxl" if architecture.startswith("sdxl") else "standard"


def _payloads(request: Request) -> dict[str, Any]:
    """Requests by job id, echoed as "payload" once done (kept in memory: lost on restart)."""
    state = request.app.state
    if getattr(state, "diffusionapi_payloads", None) is None:
        state.diffusionapi_payloads = {}
    found: dict[str, Any] = state.diffusionapi_payloads
    return found


async def hello(request: Request) -> Response:
    return JSONResponse({"ok": True})


def _entries(request: Request, types: ModelType) -> Any:
    return request.app.state.registry.list(type=types, limit=None).items


async def models(request: Request) -> Response:
    items = await run_in_threadpool(_entries, request, _IMAGE_TYPES)
    listed = [
        {
            "name": e.name,
            "type": _family(e.architecture),
            "path": e.path,
            "architecture": e.architecture,
        }
        for e in items
    ]
    return JSONResponse({"status": "success", "models": listed})


async def loras(request: Request) -> Response:
    items = await run_in_threadpool(_entries, request, ModelType.LORA)
    return JSONResponse(
        {"status": "success", "loras": [{"name": e.name, "scale": 1.0} for e in items]}
    )


async def upscalers(request: Request) -> Response:
    items = await run_in_threadpool(_entries, request, _UPSCALERS)
    listed = [{"name": "Latent", "path": "internal"}] + [
        {"name": e.name, "path": e.path} for e in items
    ]
    return JSONResponse({"status": "success", "upscalers": listed})


def _refiners(request: Request) -> dict[str, str | None]:
    """Base job id -> its refiner job id (None until the base pass has finished)."""
    state = request.app.state
    if getattr(state, "diffusionapi_refiners", None) is None:
        state.diffusionapi_refiners = {}
    found: dict[str, str | None] = state.diffusionapi_refiners
    return found


async def _refine_after(request: Request, req: Txt2ImgRequest, base_id: str, owner: Any) -> None:
    """Queue the refiner pass once the base job has completed (a failed or cancelled base
    pass is the request's final state)."""
    state = request.app.state
    async with state.events.subscribe() as events:
        while (job := state.jobs.store.get(base_id)).status not in FINISHED:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await events.get()
    if job.status == "completed" and job.outputs:
        try:
            refiner = await run_in_threadpool(submit_refiner, state.generation, req, job, owner)
        except Exception as exc:  # the queue refused it: the request ends in error
            _failed(request)[base_id] = str(exc)
            return
        _refiners(request)[base_id] = refiner.id


def _failed(request: Request) -> dict[str, str]:
    state = request.app.state
    if getattr(state, "diffusionapi_failed", None) is None:
        state.diffusionapi_failed = {}
    found: dict[str, str] = state.diffusionapi_failed
    return found


async def txt2img(request: Request) -> Response:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    req = Txt2ImgRequest.model_validate(data)
    req.to_spec()  # sampler/scheduler errors before anything is queued
    owner = identity_of(request.scope).job_owner
    job = await run_in_threadpool(submit, request.app.state.generation, req, owner)
    # the request as the seed echoes it once done
    _payloads(request)[job.id] = req.model_dump(mode="json")
    if req.refiner_checkpoint:
        _refiners(request)[job.id] = None
        task = asyncio.create_task(_refine_after(request, req, job.id, owner))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    return JSONResponse({"job_id": job.id, "status": "queued"})


async def queue(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    jobs = request.app.state.jobs
    job = jobs.store.get(job_id)
    if job is None or not identity_of(request.scope).may_see(job.owner):
        raise JobNotFound(f"job not found: {job_id}")
    payload = _payloads(request).get(job.id)
    refiners = _refiners(request)
    if job.id not in refiners:
        body = await run_in_threadpool(
            render.queue_status, job, jobs.view(job), payload, jobs.output_dir(job.id)
        )
        return JSONResponse(body)
    # with a refiner: the base pass, then the refiner job, reported under the base job's id
    refiner_id = refiners[job.id]
    refiner = jobs.store.get(refiner_id) if refiner_id else None
    base_view = jobs.view(job)
    if refiner is None and job.status == "completed":  # refiner pending, or refused
        error = _failed(request).get(job.id)
        body = {
            "status": "success",
            "job_id": job.id,
            "progress": 50.0,
            "current_phase": "error" if error else "refining",
            "state": "error" if error else "processing",
            "error": error,
        }
        return JSONResponse(body)
    final = refiner if refiner is not None else job
    view = jobs.view(final)
    shown = render.refined(job, base_view, refiner, view if refiner is not None else None)
    body = await run_in_threadpool(
        functools.partial(render.queue_status, shown_id=job.id, shown=shown),
        final,
        view,
        payload,
        jobs.output_dir(final.id),
    )
    return JSONResponse(body)


ENDPOINTS: list[Endpoint] = [
    Endpoint("/hello", _seed_errors(hello), access=PUBLIC),
    Endpoint("/models", _seed_errors(models), access=USER),
    Endpoint("/loras", _seed_errors(loras), access=USER),
    Endpoint("/upscalers", _seed_errors(upscalers), access=USER),
    Endpoint("/txt2img", _seed_errors(txt2img), ("POST",), USER, Txt2ImgRequest),
    Endpoint("/queue/{job_id:str}", _seed_errors(queue), access=OWNED),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
