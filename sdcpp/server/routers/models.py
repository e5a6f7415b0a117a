"""Model management (seed 002 / seed 004 "Model Management"): HTTP only — parse, call the
registry through ``model_info``, format. Listing, types and refresh live in ``native``.

No auth yet: seed 002 protects everything here except listing, which comes with auth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ...errors import InvalidArgument
from ...registry import ModelNotFoundError, ModelRegistry, RegistryError
from .. import model_info
from ..errors import ApiError
from ..schemas.native import ModelIdRequest
from .native import body

T = TypeVar("T")
# Hashing reads whole files (tens of GB): at most this many at once, on threads of their own
# rather than Starlette's shared pool, so long hashes never starve ordinary requests.
HASH_CONCURRENCY = 2


async def _registry_call(
    request: Request, fn: Callable[[ModelRegistry, str], T], name: str, *, hashing: bool = False
) -> T:
    registry = request.app.state.registry
    try:
        if hashing:
            limiter = _hash_limiter(request)
            return await anyio.to_thread.run_sync(fn, registry, name, limiter=limiter)
        return await run_in_threadpool(fn, registry, name)
    except ModelNotFoundError:
        raise ApiError(404, "MODEL_NOT_FOUND", f"model not found: {name}") from None
    except InvalidArgument:
        raise  # unsafe paths, ambiguous names: the error table makes them 400s
    except RegistryError as exc:  # the file changed while it was being read
        raise ApiError(409, "MODEL_CHANGED", str(exc)) from None


def _hash_limiter(request: Request) -> anyio.CapacityLimiter:
    # Created on first use, inside the event loop, and kept with the app (no module state).
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "hash_limiter", None)
    if limiter is None:
        limiter = state.hash_limiter = anyio.CapacityLimiter(HASH_CONCURRENCY)
    return limiter


async def model_detail(request: Request) -> JSONResponse:
    """One model: its entry, detection, required and missing companions, load plan."""
    name = request.path_params["model_id"]
    return JSONResponse(await _registry_call(request, model_info.describe, name))


async def model_directories(request: Request) -> JSONResponse:
    """The typed model folders and their state."""
    registry = request.app.state.registry
    return JSONResponse(await run_in_threadpool(model_info.directories, registry))


async def model_stats(request: Request) -> JSONResponse:
    """Counts and sizes per type and architecture."""
    registry = request.app.state.registry
    return JSONResponse(await run_in_threadpool(model_info.stats, registry))


async def model_hash(request: Request) -> JSONResponse:
    """SHA-256 of a model file (cached while the file is unchanged)."""
    # Synchronous for now: a 20 GB file takes about a minute. Issue 6 turns this into a job
    # with progress events; until then the request waits, on a thread of its own.
    req = await body(request, ModelIdRequest)
    return JSONResponse(
        await _registry_call(request, model_info.hash_model, req.model_id, hashing=True)
    )


async def model_validate(request: Request) -> JSONResponse:
    """Check a model file's header, its required companions and its tensor dtypes."""
    req = await body(request, ModelIdRequest)
    return JSONResponse(await _registry_call(request, model_info.validate, req.model_id))


# (method, route path) -> request body model, for the OpenAPI document
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/api/models/hash"): ModelIdRequest,
    ("POST", "/api/models/validate"): ModelIdRequest,
}


def routes() -> list[BaseRoute]:
    return [
        Route("/api/models/directories", model_directories),
        Route("/api/models/stats", model_stats),
        Route("/api/models/hash", model_hash, methods=["POST"]),
        Route("/api/models/validate", model_validate, methods=["POST"]),
        # Last: it would take "stats" or "directories" for a model id.
        Route("/api/models/{model_id:str}", model_detail),
    ]
