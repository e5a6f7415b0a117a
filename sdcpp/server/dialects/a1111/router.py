"""AUTOMATIC1111's ``/sdapi/v1`` routes: HTTP only (parse, call the dialect's helpers, render).

Every generation is an ordinary job of the one queue (``generate.py``); lists come from the
registry (``catalog.py``); ``/options`` is per user (``options.py``). Every failure answers in
A1111's envelope (``render.error_response``), the access guard's 401/403 included
(``render.A1111Guard``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from .... import __version__
from ...auth.identity import identity_of
from ...auth.permissions import USER
from ...errors import load_failed
from ...exceptions import BadRequest
from ...imaging import decode_image
from ...routing import Endpoint, bodies, starlette_routes
from ...spec_params import load_params
from .. import Handler, enveloped
from . import catalog, extras, generate, options, render, samplers
from .schemas import (
    ExtrasBatchImagesRequest,
    ExtrasSingleImageRequest,
    Img2ImgRequest,
    PNGInfoRequest,
    Txt2ImgRequest,
)

PREFIX = "/sdapi/v1"
LOAD_CONCURRENCY = 2  # model loads wait behind the running job: never on Starlette's pool


a1111_errors = enveloped(render.error_response)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None


def _owner(request: Request) -> str | None:
    return identity_of(request.scope).job_owner


async def _generate(request: Request, model: type[Txt2ImgRequest]) -> Response:
    req = model.model_validate(await _body(request))
    started = time.time()
    out, entry = await generate.run(request, req)
    if out.disconnected:
        return Response(status_code=499)
    return JSONResponse(generate.answer(req, out, entry, started))


async def txt2img(request: Request) -> Response:
    return await _generate(request, Txt2ImgRequest)


async def img2img(request: Request) -> Response:
    return await _generate(request, Img2ImgRequest)


# -- options and model switching ------------------------------------------------------------
def _current(request: Request) -> Any:
    app = request.app.state
    return options.current_checkpoint(
        options.state_of(app), app.registry, _owner(request), app.settings.model
    )


async def get_options(request: Request) -> Response:
    entry = await run_in_threadpool(_current, request)
    return JSONResponse(options.view(options.state_of(request.app.state), _owner(request), entry))


async def _load(request: Request, entry: Any) -> None:
    """Load ``entry`` in the engine as an explicit load plans it (the next job finds it)."""
    app = request.app.state
    if str(app.registry.resolve(entry.id)) in app.jobs.loaded_models:
        return
    params = await run_in_threadpool(load_params, app.registry, entry.id, app.settings.threads)
    dialect = options.state_of(app)
    if dialect.load_limiter is None:
        dialect.load_limiter = anyio.CapacityLimiter(LOAD_CONCURRENCY)
    final = await anyio.to_thread.run_sync(
        app.jobs.load_model, params, limiter=dialect.load_limiter
    )
    if final.get("type") != "loaded":
        raise load_failed(final)


async def set_options(request: Request) -> Response:
    """POST /options: answers null, as A1111. ``sd_model_checkpoint`` loads that model and
    makes it the caller's default."""
    values = await _body(request)
    if not isinstance(values, dict):
        raise ValueError("the body must be a JSON object of option names and values")
    app = request.app.state
    dialect = options.state_of(app)
    checked = await run_in_threadpool(options.checked, app.registry, values)
    if name := checked.get("sd_model_checkpoint"):
        entry = await run_in_threadpool(catalog.find_checkpoint, app.registry, str(name))
        await _load(request, entry)
        dialect.checkpoints[options.owner_key(_owner(request))] = entry.id
    options.store(dialect, _owner(request), checked)
    return JSONResponse(None)


# -- progress, interrupt, skip --------------------------------------------------------------
def _visible_job(request: Request) -> Any:
    jobs = request.app.state.jobs
    job_id = jobs.current
    job = jobs.store.get(job_id) if job_id else None
    if job is None or job.status != "processing":
        return None
    return job if identity_of(request.scope).may_see(job.owner) else None


async def progress(request: Request) -> Response:
    skip = request.query_params.get("skip_current_image", "").lower() in ("1", "true", "yes")
    app = request.app.state
    dialect = options.state_of(app)
    job = _visible_job(request)
    live = app.jobs.live.get(job.id) if job is not None else None
    return JSONResponse(render.progress(dialect, job, live, skip))


async def _stop(request: Request, skip: bool) -> None:
    job = _visible_job(request)
    if job is None:
        return
    dialect = options.state_of(request.app.state)
    run = dialect.runs.get(job.id)
    if skip:
        dialect.skipped = True
        if run is not None:
            run.skipped = True
    else:
        dialect.interrupted = True
        if run is not None:
            run.interrupted = True
    request.app.state.jobs.cancel(job.id)


async def interrupt(request: Request) -> Response:
    await _stop(request, skip=False)
    return JSONResponse({})


async def skip(request: Request) -> Response:
    await _stop(request, skip=True)
    return JSONResponse(None)


# -- lists ----------------------------------------------------------------------------------
async def sd_models(request: Request) -> Response:
    registry = request.app.state.registry
    entries = await run_in_threadpool(catalog.checkpoints, registry)
    return JSONResponse([catalog.sd_model(registry, e) for e in entries])


def _lister(fn: Callable[[Any], Any]) -> Handler:
    async def handler(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(fn, request.app.state.registry))

    return handler


def _constant(value: Callable[[], Any]) -> Handler:
    async def handler(request: Request) -> Response:
        return JSONResponse(value())

    return handler


def _latent_modes() -> list[dict[str, str]]:
    return [{"name": name} for name in catalog.LATENT_MODES]


def _scripts() -> dict[str, list[str]]:
    return {"txt2img": [], "img2img": []}


async def refresh(request: Request) -> Response:
    await run_in_threadpool(request.app.state.registry.refresh)
    return JSONResponse(None)


def _meminfo() -> dict[str, Any]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {"error": "unavailable"}
    total, free = values.get("MemTotal", 0), values.get("MemAvailable", 0)
    return {"free": free, "used": total - free, "total": total}


async def memory(request: Request) -> Response:
    ram = await run_in_threadpool(_meminfo)
    return JSONResponse({"ram": ram, "cuda": {"error": "unavailable"}})


async def cmd_flags(request: Request) -> Response:
    """A few of the server's settings under A1111's flag names; never a secret or a key."""
    settings = request.app.state.settings
    return JSONResponse(
        {
            "api": True,
            "nowebui": False,
            "api_auth": None,
            "listen": settings.host not in ("127.0.0.1", "localhost", "::1"),
            "port": settings.port,
            "ckpt_dir": str(settings.models_path / "checkpoints"),
            "lora_dir": str(settings.models_path / "loras"),
            "embeddings_dir": str(settings.models_path / "embeddings"),
            "data_dir": str(settings.data_dir),
            "sdcpp_version": __version__,
        }
    )


# -- images ---------------------------------------------------------------------------------
def _decode(request: Request, text: str, field: str) -> Any:
    return decode_image(text, field, request.app.state.settings.max_image_pixels)


async def png_info(request: Request) -> Response:
    req = PNGInfoRequest.model_validate(await _body(request))
    image = await run_in_threadpool(_decode, request, req.image, "image")
    return JSONResponse(render.png_info(image))


async def extra_single_image(request: Request) -> Response:
    req = ExtrasSingleImageRequest.model_validate(await _body(request))
    if not req.image:
        raise ValueError("image: a base64 image is required")
    image = await run_in_threadpool(_decode, request, req.image, "image")
    result = await extras.upscale(request, image, req)
    return JSONResponse({"html_info": "", "image": await run_in_threadpool(extras.png, result)})


async def extra_batch_images(request: Request) -> Response:
    req = ExtrasBatchImagesRequest.model_validate(await _body(request))
    out = []
    for i, item in enumerate(req.imageList):
        image = await run_in_threadpool(_decode, request, item.data, f"imageList[{i}]")
        out.append(await run_in_threadpool(extras.png, await extras.upscale(request, image, req)))
    return JSONResponse({"html_info": "", "images": out})


def _endpoint(
    path: str, handler: Handler, method: str = "GET", body: type[BaseModel] | None = None
) -> Endpoint:
    """One A1111 route: every signed-in user may call it (``/options`` and the lists are per
    user; the refreshes only rescan the models dir), its failures and refusals in A1111's
    envelope."""
    name = "a1111_" + path.strip("/").replace("-", "_")
    wrapped = a1111_errors(handler)
    return Endpoint(PREFIX + path, wrapped, (method,), USER, body, name, guard=render.A1111Guard)


ENDPOINTS: list[Endpoint] = [
    _endpoint("/txt2img", txt2img, "POST", Txt2ImgRequest),
    _endpoint("/img2img", img2img, "POST", Img2ImgRequest),
    _endpoint("/options", get_options),
    _endpoint("/options", set_options, "POST"),
    _endpoint("/progress", progress),
    _endpoint("/interrupt", interrupt, "POST"),
    _endpoint("/skip", skip, "POST"),
    _endpoint("/sd-models", sd_models),
    _endpoint("/sd-vae", _lister(catalog.vaes)),
    _endpoint("/loras", _lister(catalog.loras)),
    _endpoint("/upscalers", _lister(catalog.upscalers)),
    _endpoint("/embeddings", _lister(catalog.embeddings)),
    _endpoint("/samplers", _constant(samplers.sampler_list)),
    _endpoint("/schedulers", _constant(samplers.scheduler_list)),
    _endpoint("/latent-upscale-modes", _constant(_latent_modes)),
    _endpoint("/scripts", _constant(_scripts)),
    _endpoint("/refresh-checkpoints", refresh, "POST"),
    _endpoint("/refresh-loras", refresh, "POST"),
    _endpoint("/memory", memory),
    _endpoint("/cmd-flags", cmd_flags),
    _endpoint("/png-info", png_info, "POST", PNGInfoRequest),
    _endpoint("/extra-single-image", extra_single_image, "POST", ExtrasSingleImageRequest),
    _endpoint("/extra-batch-images", extra_batch_images, "POST", ExtrasBatchImagesRequest),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
