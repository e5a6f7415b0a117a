"""OpenAI Images routes (``/v1``): HTTP only — parse, queue through the one job queue, render.

A request blocks until its images exist (OpenAI semantics) but is an ordinary queued job:
listed in /api/queue/status, owned by the caller, cancelled when the client goes away.
``stream: true`` answers Server-Sent Events instead (``stream.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ....jobspec import ImageSpec
from ...auth.identity import identity_of
from ...auth.permissions import GUEST, PUBLIC, USER
from ...errors import job_error
from ...jobs import FINISHED
from ...routing import Endpoint, bodies, starlette_routes
from . import forms
from .render import OpenAIGuard, error_response
from .schemas import (
    ImageOptions,
    ImagesEditRequest,
    ImagesGenerateRequest,
    ImagesVariationRequest,
    resolve_model,
)
from .stream import USAGE, stream_job

DISCONNECT_CHECK = 0.5  # seconds between checks that the waiting client is still there
IMAGE_TYPES = forms.IMAGE_TYPES
Handler = Callable[[Request], Awaitable[Response]]


def openai_errors(handler: Handler) -> Handler:
    """Every failure of a /v1 route answered in OpenAI's envelope."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return error_response(exc)

    return wrapped


async def submit_and_wait(request: Request, spec: Any, job_id: str | None = None) -> Any:
    """The one place this dialect queues a blocking job: submit_spec, then wait for the job
    to end (cancelling it if the client disconnects). Returns the finished job, or None."""
    state = request.app.state
    owner = identity_of(request.scope).job_owner
    async with state.events.subscribe() as events:
        job = await run_in_threadpool(state.generation.submit_spec, spec, owner, job_id)
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


async def _answer(
    request: Request, req: ImageOptions, spec: ImageSpec, job_id: str, prefix: str
) -> Response:
    """Queue the job and answer: its event stream, or (blocking) OpenAI's ImagesResponse."""
    if req.stream:
        owner = identity_of(request.scope).job_owner
        return await stream_job(request, spec, job_id, req, prefix, owner)
    job = await submit_and_wait(request, spec, job_id)
    if job is None:
        return Response(status_code=499)
    if job.status != "completed":
        raise job_error(job)  # the table's status for the job's code, as on every route
    as_url = req.response_format == "url"
    data = await run_in_threadpool(_images, request, job, as_url, req.prompt.strip())
    width, height = job.params.get("width"), job.params.get("height")
    return JSONResponse(
        {
            "created": int(time.time()),
            "data": data,
            **req.echo(),
            "size": f"{width}x{height}" if width and height else (req.size or "auto"),
            "usage": USAGE,
        }
    )


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise forms.FormError(None, "the body is not valid JSON") from None


@openai_errors
async def generations(request: Request) -> Response:
    req = ImagesGenerateRequest.model_validate(_json_body(await request.body()))
    registry = request.app.state.registry
    model = await run_in_threadpool(resolve_model, registry, req.model, IMAGE_TYPES)
    return await _answer(request, req, req.to_spec(model), uuid.uuid4().hex, "image_generation")


async def _edit(
    request: Request, req: ImagesEditRequest, form: forms.Form, ref_ok: bool
) -> Response:
    """An edit (or a variation, ``ref_ok`` false: one image, the whole of it changed): images
    checked and stored under the job's id, then queued."""
    state = request.app.state
    model = await run_in_threadpool(resolve_model, state.registry, req.model, IMAGE_TYPES)
    ref_model = ref_ok and await run_in_threadpool(
        forms.takes_ref_images, state.registry, model, state.settings.model
    )
    job_id = uuid.uuid4().hex
    inputs = state.jobs.input_dir(job_id)
    try:
        size, images = await run_in_threadpool(
            forms.edit_images,
            form,
            req.size,
            inputs,
            state.settings.max_image_pixels,
            ref_model,
            ref_ok,  # an edit's transparent image is its own mask; a variation's is not
        )
        spec = req.to_spec(model, size, **images)
        return await _answer(request, req, spec, job_id, "image_edit")
    except BaseException:
        if state.jobs.store.get(job_id) is None:  # never queued: its inputs are nobody's
            shutil.rmtree(inputs, ignore_errors=True)
        raise


@openai_errors
async def edits(request: Request) -> Response:
    form = await forms.read_form(request)
    req = ImagesEditRequest.model_validate(form.fields)
    return await _edit(request, req, form, ref_ok=True)


@openai_errors
async def variations(request: Request) -> Response:
    form = await forms.read_form(request)
    req = ImagesVariationRequest.model_validate(form.fields)
    if form.mask is not None or len(form.images) > 1:
        raise forms.FormError("image", "a variation takes one image and no mask")
    raw = form.images[0] if form.images else b""
    prompt = req.prompt or await run_in_threadpool(forms.embedded_prompt, raw)
    return await _edit(request, req.as_edit(prompt or ""), form, ref_ok=False)


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


ENDPOINTS: list[Endpoint] = [
    Endpoint("/v1/images/generations", generations, ("POST",), USER, ImagesGenerateRequest),
    # edits and variations are multipart forms, as the SDK sends them: no JSON body to document
    Endpoint("/v1/images/edits", edits, ("POST",), USER),
    Endpoint("/v1/images/variations", variations, ("POST",), USER),
    Endpoint("/v1/models", models, access=GUEST),
    Endpoint("/v1/models/{model_id:path}", model, access=GUEST),
    Endpoint("/v1/{rest:path}", preflight, ("OPTIONS",), PUBLIC),  # CORS preflights
]
# every route's refusals (401/403) in OpenAI's envelope
ENDPOINTS = [dataclasses.replace(ep, guard=OpenAIGuard) for ep in ENDPOINTS]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
