"""A1111's answers: generation responses (``images``, ``parameters``, ``info``), progress,
png-info, and its error envelope.

Errors look as A1111's exception middleware writes them,
``{"error": <exception type>, "detail": ..., "body": ..., "errors": <str(exception)>}``, with
a status from the server's one error table; a request body that fails validation answers 422
with pydantic's error list in ``detail`` (as FastAPI, under A1111, does).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
from typing import Any

from PIL import Image
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from .... import __version__
from ....parameters import read_parameters
from ...auth.permissions import Guard
from ...errors import error_headers, lookup
from ...exceptions import ServerError

_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


def error_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, ValidationError):
        detail: Any = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "RequestValidationError", "detail": detail, "body": "",
             "errors": "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)},
            status_code=422,
        )  # fmt: skip
    status, _, message = lookup(exc, input_errors=True)
    body = {"error": "HTTPException", "detail": message, "body": "",
            "errors": f"{status}: {message}"}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=error_headers(exc))


class A1111Guard(Guard):
    """The route's access guard, its 401/403 in A1111's envelope; a 401 asks for Basic
    credentials, as A1111's ``--api-auth`` does. (The handlers answer their own errors, so
    a ``ServerError`` reaching here is the guard's, raised before any response started.)"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ServerError as exc:
            status = lookup(exc)[0]
            if status not in (401, 403):
                raise
            answer = error_response(exc)
            if status == 401:
                answer.headers["WWW-Authenticate"] = 'Basic realm="sdcpp"'
            await answer(scope, receive, send)


def info(
    req: Any,
    *,
    seeds: list[int],
    infotexts: list[str],
    width: int | None,
    height: int | None,
    checkpoint: Any,
    sampler: str | None,
    started: float,
    interrupted: bool,
) -> str:
    """``info``: the JSON string A1111's ``Processed.js()`` writes, from the finished jobs."""
    count = len(seeds)
    seed = seeds[0] if seeds else req.seed
    subseed = req.subseed if req.subseed >= 0 else seed
    obj = {
        "prompt": req.prompt,
        "all_prompts": [req.prompt] * count,
        "negative_prompt": req.negative_prompt,
        "all_negative_prompts": [req.negative_prompt] * count,
        "seed": seed,
        "all_seeds": seeds,
        "subseed": subseed,
        "all_subseeds": [subseed + i for i in range(count)],
        "subseed_strength": req.subseed_strength,
        "width": width,
        "height": height,
        "sampler_name": sampler,
        "cfg_scale": req.cfg_scale,
        "steps": req.steps,
        "batch_size": req.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": getattr(checkpoint, "name", None),
        "sd_model_hash": getattr(checkpoint, "short_hash", None),
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": req.seed_resize_from_w,
        "seed_resize_from_h": req.seed_resize_from_h,
        "denoising_strength": req.denoising_strength,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": req.styles or [],
        "job_timestamp": timestamp(started),
        "clip_skip": req.clip_skip or 1,
        "is_using_inpainting_conditioning": False,
        "version": f"sdcpp {__version__}",
        "interrupted": interrupted,
    }
    return json.dumps(obj)


def progress(dialect: Any, job: Any, live: Any, skip_image: bool) -> dict[str, Any]:
    """``/progress`` for the running job the caller may see (idle: all zero, as A1111)."""
    state = {
        "skipped": dialect.skipped,
        "interrupted": dialect.interrupted,
        "job": "",
        "job_count": 0,
        "job_timestamp": "0",
        "job_no": 0,
        "sampling_step": 0,
        "sampling_steps": 0,
    }
    if job is None or live is None:
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None,
                "textinfo": None}  # fmt: skip
    view = live.view()
    state.update(
        job=f"scripts_{job.kind}" if job.kind in ("txt2img", "img2img") else job.kind,
        job_count=1,
        job_timestamp=timestamp(job.started_at or live.started),
        sampling_step=view["current_step"],
        sampling_steps=view["total_steps"],
    )
    # A1111's formula: a little progress from the start so the ETA never divides by zero
    done = 0.01 + (view["current_step"] / view["total_steps"] if view["total_steps"] else 0.0)
    elapsed = view["time_elapsed"] / 1000
    eta = view["time_remaining"] / 1000 if view["time_remaining"] is not None else None
    return {
        "progress": min(done, 1.0),
        "eta_relative": eta if eta is not None else max(0.0, elapsed / done - elapsed),
        "state": state,
        "current_image": b64(live.preview) if live.preview and not skip_image else None,
        "textinfo": f"{view['phase']} {view['current_step']}/{view['total_steps']}",
    }


def timestamp(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).strftime("%Y%m%d%H%M%S")


def parameters(req: Any, include_init_images: bool = True) -> dict[str, Any]:
    """``parameters``: the request as received (A1111 echoes ``vars(request)``)."""
    echoed: dict[str, Any] = req.model_dump()
    if "init_images" in echoed and not include_init_images:
        echoed["init_images"], echoed["mask"] = None, None
    return echoed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _text_of(image: Image.Image) -> str | None:
    """The A1111 parameters of an image: the PNG text chunk, else EXIF UserComment (JPEG,
    WebP: where sdcpp and A1111 write it)."""
    if text := image.info.get("parameters"):
        return str(text)
    raw = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if isinstance(raw, bytes) and raw.startswith(b"UNICODE\0"):
        return raw[8:].decode("utf-16-be", errors="replace")
    if isinstance(raw, bytes) and raw.startswith(b"ASCII\0\0\0"):
        return raw[8:].decode("ascii", errors="replace")
    return raw if isinstance(raw, str) and raw else None


def png_info(image: Image.Image) -> dict[str, Any]:
    """``/png-info``: {info, items, parameters} with A1111's parameter keys."""
    text = _text_of(image) or ""
    items = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    items.pop("parameters", None)
    params: dict[str, Any] = {}
    if text:
        parsed = read_parameters(text)
        params = {"Prompt": parsed["prompt"], "Negative prompt": parsed["negative_prompt"]}
        params.update(parsed["settings"])
        if "width" in parsed:
            params["Size-1"], params["Size-2"] = str(parsed["width"]), str(parsed["height"])
    return {"info": text, "items": items, "parameters": params}


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
