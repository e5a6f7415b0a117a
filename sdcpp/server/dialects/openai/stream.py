"""``stream: true``: the job's images as Server-Sent Events, in the shape the OpenAI SDK parses.

    event: image_generation.partial_image   data: {type, b64_json, partial_image_index, ...}
    event: image_generation.completed       data: {type, b64_json, usage, ...}   (one per image)

(``image_edit.*`` for edits.) Partial images are the engine's step previews (the worker's
``preview`` events, which ``JobService.preview_watchers`` hands to this stream as they come):
up to ``partial_images`` of them, spread over the sampling steps, scaled to the output size and
encoded in the output format. A fast job may send fewer, as OpenAI's may. A failed job ends the
stream with ``data: {"error": {...}}``, which the SDK raises as an ``APIError``; a client that
goes away cancels the job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from PIL import Image
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ....jobspec import ImageSpec
from ...connlimits import event_stream
from ...jobs import FINISHED
from .schemas import ImageOptions

POLL = 0.1  # seconds between looks at the job's state while no preview comes
USAGE = {
    "input_tokens": 0,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
    "output_tokens": 0,
    "total_tokens": 0,
}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def partial_steps(total: int, wanted: int) -> list[int]:
    """The sampling steps after which partial images 0..wanted-1 are due: spread evenly, the
    last one before the end (ceil((i+1) * total / (wanted+1)), at least step 1)."""
    return [max(1, math.ceil((i + 1) * total / (wanted + 1))) for i in range(wanted)]


def encode_partial(png: bytes, size: tuple[int, int], fmt: str, quality: int) -> str:
    """A preview frame as the client's image: the output size, the output format, base64."""
    with Image.open(io.BytesIO(png)) as frame:
        image = frame.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    options = {"quality": quality} if fmt in ("jpeg", "webp") else {"compress_level": 1}
    image.save(buf, format=_PIL_FORMAT.get(fmt, "PNG"), **options)
    return base64.b64encode(buf.getvalue()).decode()


def _event(kind: str, data: dict[str, Any]) -> dict[str, str]:
    return {"event": kind, "data": orjson.dumps(data).decode()}


async def stream_job(
    request: Request,
    spec: ImageSpec,
    job_id: str,
    req: ImageOptions,
    prefix: str,
    owner: str | None,
) -> EventSourceResponse:
    """Queue ``spec`` as job ``job_id`` (refusals raise before any event is sent) and answer
    with its event stream. ``prefix``: ``image_generation`` or ``image_edit``."""
    state = request.app.state
    jobs = state.jobs
    loop = asyncio.get_running_loop()
    previews: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    wanted = req.partial_images or 0
    if wanted:
        jobs.preview_watchers[job_id] = lambda step, png: loop.call_soon_threadsafe(
            previews.put_nowait, (step, png)
        )
    try:
        job = await run_in_threadpool(state.generation.submit_spec, spec, owner, job_id)
    except BaseException:
        jobs.preview_watchers.pop(job_id, None)
        raise
    width = int(job.params.get("width") or spec.width or 0)
    height = int(job.params.get("height") or spec.height or 0)
    due = partial_steps(int(job.params.get("steps") or spec.steps or 1), wanted)
    common: dict[str, Any] = {**req.echo(), "size": f"{width}x{height}"}
    fmt, quality = spec.output_format, spec.output_quality

    async def events() -> AsyncIterator[dict[str, str]]:
        index = 0
        finished = False
        try:
            while True:
                if previews.empty():
                    current = jobs.store.get(job_id)
                    if current is None or current.status in FINISHED:
                        finished = True
                        await asyncio.sleep(0)  # previews the worker sent before it ended
                        if previews.empty():
                            break
                        continue
                    try:
                        async with asyncio.timeout(POLL):
                            step, png = await previews.get()
                    except TimeoutError:
                        continue
                else:
                    step, png = previews.get_nowait()
                if index < len(due) and step >= due[index] and width and height:
                    b64 = await run_in_threadpool(
                        encode_partial, png, (width, height), fmt, quality
                    )
                    data = {
                        "type": f"{prefix}.partial_image",
                        "b64_json": b64,
                        "partial_image_index": index,
                        "created_at": int(time.time()),
                        **common,
                    }
                    index += 1
                    yield _event(f"{prefix}.partial_image", data)
            if current is None or current.status != "completed":
                status = current.status if current else "failed"
                error = {
                    "message": (current.error if current else None) or f"job {status}",
                    "type": "server_error",
                    "param": None,
                    "code": status,
                }
                yield _event("error", {"type": "error", "error": error})
                return
            folder = jobs.output_dir(job_id)
            for name in current.outputs:
                raw = await run_in_threadpool((folder / name).read_bytes)
                data = {
                    "type": f"{prefix}.completed",
                    "b64_json": base64.b64encode(raw).decode(),
                    "created_at": int(time.time()),
                    "usage": USAGE,
                    **common,
                }
                yield _event(f"{prefix}.completed", data)
        finally:
            jobs.preview_watchers.pop(job_id, None)
            if not finished:  # the client left (sse-starlette cancels this generator)
                with contextlib.suppress(Exception):
                    jobs.cancel(job_id)

    return event_stream(request, events())  # a client that stops reading is dropped
