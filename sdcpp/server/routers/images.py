"""Image utilities and estimates (native dialect): HTTP only — parse, call a service, format.

``/api/image/download`` exists so the web UI can load a picture from another site without
that site's CORS consent: the server fetches it instead, under the SSRF rules of ``fetch``.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from .. import imageops
from ..auth.permissions import USER
from ..estimate import estimate_request
from ..exceptions import BadRequest, FeatureDisabled, Unavailable
from ..fetch import Fetcher
from ..imaging import decode_bytes, decode_image
from ..routing import Endpoint, bodies, starlette_routes
from ..schemas.images import CropRequest, EstimateRequest, ResizeRequest
from .common import body

# Downloads run on Starlette's shared thread pool (40 tokens); at most this many at once, each
# bounded by the fetcher's deadline, so they can never starve the other endpoints' work.
MAX_CONCURRENT_DOWNLOADS = 4
_MAX_URL = 4096


def _image_response(data: bytes, fmt: str) -> Response:
    return Response(
        data, media_type=imageops.MEDIA_TYPES[fmt], headers={"X-Content-Type-Options": "nosniff"}
    )


async def image_resize(request: Request) -> Response:
    """Resize an image (fit, fill or stretch) and return it encoded as asked."""
    req = await body(request, ResizeRequest)
    max_pixels = request.app.state.settings.max_image_pixels

    def work() -> bytes:
        image = decode_image(req.image, "image", max_pixels)
        resized = imageops.resize(image, req.width, req.height, req.mode)
        return imageops.encode(resized, req.format, req.quality)

    return _image_response(await run_in_threadpool(work), req.format)


async def image_crop(request: Request) -> Response:
    """Crop a box (which must lie inside the image) and return it encoded as asked."""
    req = await body(request, CropRequest)
    max_pixels = request.app.state.settings.max_image_pixels

    def work() -> bytes:
        image = decode_image(req.image, "image", max_pixels)
        cropped = imageops.crop(image, req.x, req.y, req.width, req.height)
        return imageops.encode(cropped, req.format, req.quality)

    return _image_response(await run_in_threadpool(work), req.format)


def _fetcher(state: Any) -> Fetcher:
    # made on first use from the settings; tests put their own (loopback-only) one in its place
    fetcher = getattr(state, "fetcher", None)
    if fetcher is None:
        settings = state.settings
        trusted = frozenset(h.lower().rstrip(".") for h in settings.download_trusted_hosts)
        fetcher = state.fetcher = Fetcher(
            max_bytes=settings.download_max_mb * 2**20,
            timeout=settings.download_timeout,
            trusted_hosts=trusted,
        )
    return fetcher


def _slots(state: Any) -> threading.BoundedSemaphore:
    slots = getattr(state, "download_slots", None)
    if slots is None:  # no await since the check: no other request can interleave here
        slots = state.download_slots = threading.BoundedSemaphore(MAX_CONCURRENT_DOWNLOADS)
    return slots


def url_image(state: Any, url: str, field: str) -> bytes:
    """The image at ``url`` for a request field that takes a URL (seed 002's
    ``base64_encoded_image_or_url``) and for ``/api/image/download``: one switch, the SSRF
    rules, size and time limits and concurrency slots. Blocking; returns the file's bytes."""
    if not state.settings.allow_image_download:
        raise FeatureDisabled(
            f"{field}: image download is disabled "
            "(enable it with SDCPP_ALLOW_IMAGE_DOWNLOAD=1, or send the image as base64)"
        )
    if not url or len(url) > _MAX_URL:
        raise BadRequest(f"{field}: a URL is required, of at most {_MAX_URL} chars")
    slots = _slots(state)
    if not slots.acquire(blocking=False):
        raise Unavailable("too many downloads at once", headers={"Retry-After": "1"})
    try:
        return _fetcher(state).fetch(url).body
    finally:
        slots.release()


async def image_download(request: Request) -> Response:
    """Fetch an image from a public http(s) URL and return it as PNG (off unless enabled)."""
    state = request.app.state
    url = request.query_params.get("url", "").strip()

    def work() -> bytes:
        # http.client blocks: bounded by the fetcher's deadline and the download slots
        raw = url_image(state, url, "url")
        # the body's claimed type proves nothing: decode under the upload rules, send a fresh PNG
        image = decode_bytes(raw, "url", state.settings.max_image_pixels)
        return imageops.encode(image, "png")

    return _image_response(await run_in_threadpool(work), "png")


async def estimate(request: Request) -> JSONResponse:
    """Estimated seconds and memory for a generation, from this server's measured jobs."""
    req = await body(request, EstimateRequest)
    state = request.app.state
    answer = await run_in_threadpool(
        lambda: estimate_request(
            state.registry, state.jobs.store, state.settings.model, **req.estimate_fields()
        )
    )
    return JSONResponse(answer)


# Seed 004 lists /api/image/download as public; it makes the server fetch any URL for the
# caller, so here it is for signed-in users only (and off unless enabled).
ENDPOINTS: list[Endpoint] = [
    Endpoint("/api/image/resize", image_resize, ("POST",), USER, body=ResizeRequest),
    Endpoint("/api/image/crop", image_crop, ("POST",), USER, body=CropRequest),
    Endpoint("/api/image/download", image_download, access=USER),
    Endpoint("/api/estimate", estimate, ("POST",), USER, body=EstimateRequest),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
