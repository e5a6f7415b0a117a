"""OpenAI Images routes (``/v1``): HTTP only — parse, queue through the one job queue, render.

A request blocks until its images exist (OpenAI semantics) but is an ordinary queued job:
listed in /api/queue/status, owned by the caller, cancelled when the client goes away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ....registry import ModelType
from ...auth.identity import identity_of
from ...jobs import FINISHED
from .render import error_response
from .schemas import ImagesGenerateRequest

DISCONNECT_CHECK = 0.5  # seconds between checks that the waiting client is still there
IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
Handler = Callable[[Request], Awaitable[Response]]


def openai_errors(handler: Handler) -> Handler:
    """Every failure of a /v1 route answered in OpenAI's envelope."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return error_response(exc)

    return wrapped


async def submit_and_wait(request: Request, spec: Any) -> Any:
    """The one place this dialect queues work: submit_spec, then wait for the job to end
    (cancelling it if the client disconnects). Returns the finished job, or None."""
    state = request.app.state
    owner = identity_of(request.scope).job_owner
    async with state.events.subscribe() as events:
        job = await run_in_threadpool(state.generation.submit_spec, spec, owner)
        while (current := state.jobs.store.get(job.id)).status not in FINISHED:
            if await request.is_disconnected():
                state.jobs.cancel(job.id)
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_CHECK):
                    while True:
                        data = (await events.get())["data"]
                        if data.get("job_id") == job.id and data.get("status") in FINISHED:
                            break
    return current


def _images(request: Request, job: Any, as_url: bool, prompt: str) -> list[dict[str, Any]]:
    jobs = request.app.state.jobs
    folder = jobs.output_dir(job.id)
    base = str(request.base_url).rstrip("/")
    data = []
    for name in job.outputs:
        if as_url:
            data.append({"url": base + jobs.output_url(job.id, name), "revised_prompt": prompt})
        else:
            b64 = base64.b64encode((folder / name).read_bytes()).decode()
            data.append({"b64_json": b64, "revised_prompt": prompt})
    return data


@openai_errors
async def generations(request: Request) -> Response:
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error_response(ValueError("the body is not valid JSON"))
    req = ImagesGenerateRequest.model_validate(payload)
    spec = req.to_spec()
    job = await submit_and_wait(request, spec)
    if job is None:
        return Response(status_code=499)
    if job.status != "completed":
        message = job.error or f"job {job.status}"
        body = {"error": {"message": message, "type": "server_error", "param": None,
                          "code": job.status}}  # fmt: skip
        return JSONResponse(body, status_code=500 if job.status == "failed" else 409)
    as_url = req.response_format == "url"
    data = await run_in_threadpool(_images, request, job, as_url, req.prompt)
    params = job.result.get("parameters") or [{}]
    first = params[0] if params and isinstance(params[0], dict) else {}
    width, height = first.get("width"), first.get("height")
    return JSONResponse(
        {
            "created": int(time.time()),
            "data": data,
            "background": req.background or "opaque",
            "output_format": spec.output_format,
            "quality": req.quality or "auto",
            "size": f"{width}x{height}" if width and height else (req.size or "auto"),
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        }
    )


def _model(entry: Any) -> dict[str, Any]:
    return {"id": entry.id, "object": "model", "created": 0, "owned_by": "sdcpp"}


@openai_errors
async def models(request: Request) -> Response:
    registry = request.app.state.registry
    items = await run_in_threadpool(lambda: registry.list(type=IMAGE_TYPES, limit=None).items)
    return JSONResponse({"object": "list", "data": [_model(e) for e in items]})


@openai_errors
async def model(request: Request) -> Response:
    registry = request.app.state.registry
    entry = await run_in_threadpool(registry.get, request.path_params["model_id"], IMAGE_TYPES)
    return JSONResponse(_model(entry))


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/images/generations", generations, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/v1/{rest:path}", preflight, methods=["OPTIONS"]),
    ]
