"""``/extra-single-image`` and ``/extra-batch-images``: A1111's postprocessing upscale.

As A1111's ``postprocessing_upscale`` does: ``upscaler_1`` "None" leaves the image as it is;
"Lanczos"/"Nearest" resize; an ESRGAN model runs as an ordinary ``upscale`` job of the one
queue (``GenerationService.submit_upscale``) at the model's own scale, and the result is then
resized to the size asked for (``upscaling_resize`` times, or ``upscaling_resize_w/h`` with
``upscaling_crop``). ``upscaler_2`` is blended in with ``extras_upscaler_2_visibility``. Face
restoration (GFPGAN, CodeFormer) does not exist here: a visibility above 0 is refused.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...auth.identity import identity_of
from ...errors import job_error
from ...exceptions import ClientGone
from ...schemas.native import UpscaleRequest
from . import catalog, render
from .generate import wait_for
from .schemas import ExtrasRequest

_RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}


def target(image: Image.Image, req: ExtrasRequest, max_pixels: int) -> tuple[tuple[int, int], Any]:
    """(size to upscale to, (w, h) to crop to or None)."""
    crop = None
    if req.resize_mode == 1:
        scale = max(req.upscaling_resize_w / image.width, req.upscaling_resize_h / image.height)
        if req.upscaling_crop:
            crop = (req.upscaling_resize_w, req.upscaling_resize_h)
    else:
        scale = req.upscaling_resize
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    if size[0] * size[1] > max_pixels:
        raise ValueError(f"the upscaled image would be {size[0]}x{size[1]}: too large")
    return size, crop


async def _model_upscale(request: Request, image: Image.Image, name: str) -> Image.Image:
    app = request.app.state
    entry = await run_in_threadpool(catalog.find_upscaler, app.registry, name)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    up = UpscaleRequest(image=render.b64(buf.getvalue()), upscaler=entry.id, factor=None)
    owner = identity_of(request.scope).job_owner
    async with app.events.subscribe() as events:
        job = await run_in_threadpool(app.generation.submit_upscale, up, owner)
        job = await wait_for(request, job.id, events)
    if job is None:
        raise ClientGone("the client went away")
    if job.status != "completed":
        raise job_error(job)  # the status the table gives the job's code, as everywhere
    path = app.jobs.output_dir(job.id) / job.outputs[0]
    return await run_in_threadpool(lambda: render.decode_png(path.read_bytes()))


async def _one(request: Request, image: Image.Image, req: ExtrasRequest, name: str) -> Any:
    if name in ("", "None"):
        return None
    size, crop = target(image, req, request.app.state.settings.max_image_pixels)
    resample = _RESAMPLE.get(name.lower())
    if resample is not None:
        out = image.resize(size, resample)
    else:
        out = await _model_upscale(request, image, name)
        if out.size != size:
            out = out.resize(size, Image.Resampling.LANCZOS)
    if crop is not None:
        canvas = Image.new("RGB", crop)
        canvas.paste(out, (crop[0] // 2 - out.width // 2, crop[1] // 2 - out.height // 2))
        out = canvas
    return out


async def upscale(request: Request, image: Image.Image, req: ExtrasRequest) -> Image.Image:
    if req.gfpgan_visibility > 0 or req.codeformer_visibility > 0:
        raise ValueError("face restoration (GFPGAN, CodeFormer) is not available in sdcpp")
    image = image.convert("RGB")
    first: Image.Image | None = await _one(request, image, req, req.upscaler_1)
    if first is None:
        return image
    if req.extras_upscaler_2_visibility > 0:
        second = await _one(request, image, req, req.upscaler_2)
        if second is not None:
            first = Image.blend(first, second.convert(first.mode), req.extras_upscaler_2_visibility)
    return first


def png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return render.b64(buf.getvalue())
