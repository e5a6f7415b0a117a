"""Seed 000's routes (LightDiffusion-Next): ``GET /api/telemetry`` and ``POST /api/generate``.

HTTP only: parse, hand the request to the app's ``Batcher`` (which queues batch jobs through
``GenerationService.submit_spec``, the one queue), render. ``GET /health`` is the system
router's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ....jobspec import ImageSpec
from ...auth.identity import identity_of
from ...auth.permissions import USER
from ...exceptions import BadRequest
from ...jobs import FINISHED
from ...routing import Endpoint, bodies, starlette_routes
from .. import enveloped
from . import render
from .batcher import Batcher, BatchSettings, Pending
from .schemas import GenerateRequest, signature

LOGGER = "sdcpp.server.dialects.lightdiffusion"
_FILE_HANDLERS: dict[str, logging.Handler] = {}


# every failure in the seed's envelope, whatever raised it
_seed_errors = enveloped(render.error)


def _log_to_file(data_dir: Path, level: str) -> None:
    """LD_SERVER_LOGLEVEL: this dialect's log at that level, also into {data}/logs/server.log
    (where the seed's server writes it)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    path = data_dir / "logs" / "server.log"
    if str(path) in _FILE_HANDLERS:
        _FILE_HANDLERS[str(path)].setLevel(level)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    _FILE_HANDLERS[str(path)] = handler


def close(state: Any) -> None:
    """At app shutdown: detach this app's log file from the (process-wide) dialect logger, so
    a later app in the same process neither writes into it nor fails on its removed folder."""
    path = str(Path(state.settings.data_dir) / "logs" / "server.log")
    handler = _FILE_HANDLERS.pop(path, None)
    if handler is not None:
        logging.getLogger(LOGGER).removeHandler(handler)
        handler.close()


def batcher_of(request: Request) -> Batcher:
    """The app's batcher, made on first use (knobs read from the environment then)."""
    state = request.app.state
    found: Batcher | None = getattr(state, "lightdiffusion_batcher", None)
    if found is not None:
        return found
    settings = BatchSettings.from_env()
    _log_to_file(Path(state.settings.data_dir), settings.loglevel)

    async def submit(spec: ImageSpec, owner: str | None) -> Any:
        return await run_in_threadpool(state.generation.submit_spec, spec, owner)

    async def status(job_id: str) -> str | None:
        job = state.jobs.store.get(job_id)
        return None if job is None else str(job.status)

    async def wait(job_id: str) -> Any:
        async with state.events.subscribe() as events:
            while (job := state.jobs.store.get(job_id)).status not in FINISHED:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):  # re-read now and then, whatever comes
                        while True:
                            data = (await events.get())["data"]
                            if data.get("job_id") == job_id and data.get("status") in FINISHED:
                                break
        return job

    found = state.lightdiffusion_batcher = Batcher(settings, submit, status, wait)
    state.lightdiffusion_counts = {"ignored": {}, "unknown": {}}
    return found


def _count(request: Request, kind: str, names: list[str]) -> None:
    counts: dict[str, int] = request.app.state.lightdiffusion_counts[kind]
    for name in names:
        counts[name] = counts.get(name, 0) + 1


async def generate(request: Request) -> Response:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    req = GenerateRequest.model_validate(data)
    spec = req.to_spec()
    batcher = batcher_of(request)
    ignored, unknown = req.ignored(), req.unknown()
    _count(request, "ignored", ignored)
    _count(request, "unknown", unknown)
    seed = req.requested_seed()
    if req.reuse_seed and batcher.last_seed is not None:
        seed = batcher.last_seed
    owner = identity_of(request.scope).job_owner
    item = Pending(count=req.num_images, seed=seed, prompt=req.prompt, owner=owner)
    outcome = await batcher.generate(spec, (owner, *signature(spec)), item)
    job = outcome.job
    if job.status != "completed":
        message = job.error or f"the batch job {job.id} was {job.status}"
        return JSONResponse({"detail": message}, status_code=500 if job.status == "failed" else 409)
    folder = request.app.state.jobs.output_dir(job.id)
    body = await run_in_threadpool(render.images, folder, outcome.outputs)
    headers = {"X-Sdcpp-Job-Id": job.id, "X-Sdcpp-Seeds": ",".join(map(str, outcome.seeds))}
    if ignored:
        headers["X-Sdcpp-Ignored-Fields"] = ",".join(ignored)
    return JSONResponse(body, headers=headers)


async def telemetry(request: Request) -> Response:
    batcher = batcher_of(request)
    identity = identity_of(request.scope)
    body = await render.telemetry(
        request.app.state, batcher, request.app.state.lightdiffusion_counts, identity.may_see
    )
    return JSONResponse(body)


ENDPOINTS: list[Endpoint] = [
    # counts for all; prompt previews only of the caller's own requests
    Endpoint("/api/telemetry", _seed_errors(telemetry), access=USER),
    Endpoint("/api/generate", _seed_errors(generate), ("POST",), USER, GenerateRequest),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
