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
from starlette.routing import BaseRoute, Route

from .. import imageops
from ..errors import ApiError
from ..estimate import estimate_request
from ..fetch import Fetcher
from ..imaging import decode_bytes, decode_image
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
        fetcher = state.fetcher = Fetcher(
            max_bytes=settings.download_max_mb * 2**20, timeout=settings.download_timeout
        )
    return fetcher


def _slots(state: Any) -> threading.BoundedSemaphore:
    slots = getattr(state, "download_slots", None)
    if slots is None:  # no await since the check: no other request can interleave here
        slots = state.download_slots = threading.BoundedSemaphore(MAX_CONCURRENT_DOWNLOADS)
    return slots


def url_image(state: Any, url: str, field: str) -> bytes:
    """The image at ``url`` for a request field that takes a URL (seed 002's
    ``base64_encoded_image_or_url``), fetched like ``/api/image/download``: the same switch,
    SSRF rules, size and time limits and concurrency slots. Blocking; returns file bytes."""
    if not state.settings.allow_image_download:
        raise ApiError(
            403,
            "FEATURE_DISABLED",
            f"{field} is a URL, and image download is disabled "
            "(enable it with SDCPP_ALLOW_IMAGE_DOWNLOAD=1, or send the image as base64)",
        )
    if len(url) > _MAX_URL:
        raise ApiError(400, "INVALID_PARAMETERS", f"{field}: a URL of at most {_MAX_URL} chars")
    slots = _slots(state)
    if not slots.acquire(blocking=False):
        raise ApiError(
            503, "SERVICE_UNAVAILABLE", "too many downloads at once", headers={"Retry-After": "1"}
        )
    try:
        return _fetcher(state).fetch(url).body
    finally:
        slots.release()


def _download(fetcher: Fetcher, url: str, max_pixels: int) -> bytes:
    fetched = fetcher.fetch(url)
    # the body's claimed type proves nothing: decode under the upload rules, send a fresh PNG
    image = decode_bytes(fetched.body, "url", max_pixels)
    return imageops.encode(image, "png")


async def image_download(request: Request) -> Response:
    """Fetch an image from a public http(s) URL and return it as PNG (off unless enabled)."""
    state = request.app.state
    if not state.settings.allow_image_download:
        raise ApiError(
            403,
            "FEATURE_DISABLED",
            "image download is disabled (enable it with SDCPP_ALLOW_IMAGE_DOWNLOAD=1)",
        )
    url = request.query_params.get("url", "").strip()
    if not url or len(url) > _MAX_URL:
        raise ApiError(400, "INVALID_PARAMETERS", f"url is required (at most {_MAX_URL} chars)")
    slots = _slots(state)
    if not slots.acquire(blocking=False):
        raise ApiError(
            503, "SERVICE_UNAVAILABLE", "too many downloads at once", headers={"Retry-After": "1"}
        )
    try:
        # http.client blocks; the call is bounded by the fetcher's deadline and the slots above
        data = await run_in_threadpool(
            _download, _fetcher(state), url, state.settings.max_image_pixels
        )
    finally:
        slots.release()
    return _image_response(data, "png")


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


# (method, route path) -> request body model, for the OpenAPI document
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/api/image/resize"): ResizeRequest,
    ("POST", "/api/image/crop"): CropRequest,
    ("POST", "/api/estimate"): EstimateRequest,
}


def routes() -> list[BaseRoute]:
    return [
        Route("/api/image/resize", image_resize, methods=["POST"]),
        Route("/api/image/crop", image_crop, methods=["POST"]),
        Route("/api/image/download", image_download),
        Route("/api/estimate", estimate, methods=["POST"]),
    ]
