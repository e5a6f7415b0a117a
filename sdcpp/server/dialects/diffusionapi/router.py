"""Seed 001's routes: HTTP only (parse, call the submitter or the registry, render)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ....registry import ModelType
from ...auth.identity import identity_of
from ...errors import ApiError
from . import render
from .schemas import Txt2ImgRequest
from .submit import submit

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_UPSCALERS = ModelType.ESRGAN | ModelType.UPSCALER
Handler = Callable[[Request], Awaitable[Response]]


def _seed_errors(handler: Handler) -> Handler:
    """Every failure in seed 001's envelope, whatever raised it."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return render.error(exc)

    return wrapped


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


async def txt2img(request: Request) -> Response:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_PARAMETERS", "the body is not valid JSON") from None
    req = Txt2ImgRequest.model_validate(data)
    spec = req.to_spec()
    owner = identity_of(request.scope).job_owner
    job = await run_in_threadpool(submit, request.app.state.generation, spec, owner)
    # the request as the seed echoes it once done
    _payloads(request)[job.id] = req.model_dump(mode="json")
    return JSONResponse({"job_id": job.id, "status": "queued"})


async def queue(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    jobs = request.app.state.jobs
    job = jobs.store.get(job_id)
    if job is None or not identity_of(request.scope).may_see(job.owner):
        raise ApiError(404, "JOB_NOT_FOUND", f"job not found: {job_id}")
    payloads = _payloads(request)
    body = await run_in_threadpool(
        render.queue_status, job, jobs.view(job), payloads.get(job.id), jobs.output_dir(job.id)
    )
    return JSONResponse(body)


def routes() -> list[BaseRoute]:
    return [
        Route("/hello", _seed_errors(hello)),
        Route("/models", _seed_errors(models)),
        Route("/loras", _seed_errors(loras)),
        Route("/upscalers", _seed_errors(upscalers)),
        Route("/txt2img", _seed_errors(txt2img), methods=["POST"]),
        Route("/queue/{job_id:str}", _seed_errors(queue)),
    ]
