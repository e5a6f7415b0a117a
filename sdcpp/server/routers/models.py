"""Model management (seed 002 / seed 004 "Model Management"): HTTP only — parse, call the
registry through ``model_info`` and the engine through the job service, format. Listing, types
and refresh live in ``native``.

Load and unload go through the engine client's run lock: they wait for the running job and never
overlap a generation. A queued job that needs another model simply loads it when its turn comes.

No auth yet: seed 002 protects everything here except listing, which comes with auth.
``caller_is_admin`` is the one place that decides who may overwrite files.

``POST /api/models/convert`` queues a ``convert`` job (202, like a generation): it waits its
turn in the queue, reports tensors done/total as progress, and can be cancelled queued or
running. ``server.conversion`` refuses bad requests before anything is queued.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from ...errors import InvalidArgument, SdcppError
from ...registry import ModelEntry, ModelNotFoundError, ModelRegistry
from .. import model_info, uploads
from ..auth.identity import identity_of
from ..auth.permissions import ADMIN, USER
from ..errors import load_failed, lookup
from ..exceptions import JobFailed, ModelInUse, ModelNotLoaded, ServerError
from ..routing import Endpoint, bodies, starlette_routes
from ..schemas.models import ConvertRequest, ValidateRequest
from ..schemas.native import ModelBatchRequest, ModelIdRequest
from ..spec_params import load_params
from .common import body

T = TypeVar("T")
# Hashing reads whole files (tens of GB): at most this many at once, on threads of their own
# rather than Starlette's shared pool, so long hashes never starve ordinary requests.
HASH_CONCURRENCY = 2
# Loads wait behind the running job for minutes: like hashes, never on Starlette's shared pool.
ENGINE_CONCURRENCY = 4
# Hash progress events go to SSE/WebSocket subscribers at most this often (and at the end).
HASH_EVENT_SECONDS = 0.25


async def _registry_call(
    request: Request, fn: Callable[[ModelRegistry, str], T], name: str, *, hashing: bool = False
) -> T:
    registry = request.app.state.registry
    try:
        if hashing:
            limiter = _limiter(request, "hash_limiter", HASH_CONCURRENCY)
            return await anyio.to_thread.run_sync(fn, registry, name, limiter=limiter)
        return await run_in_threadpool(fn, registry, name)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"model not found: {name}") from None


def _limiter(request: Request, name: str, size: int) -> anyio.CapacityLimiter:
    # Created on first use, inside the event loop, and kept with the app (no module state).
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, name, None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(size)
        setattr(state, name, limiter)
    return limiter


async def _engine_call(request: Request, fn: Callable[..., T], *args: Any) -> T:
    limiter = _limiter(request, "engine_limiter", ENGINE_CONCURRENCY)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


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


def _hash_progress(request: Request) -> Callable[[ModelEntry, int, int], None]:
    """Publishes ``model_hash`` events {model_id, path, bytes_done, bytes_total, progress}."""
    events = request.app.state.events
    last = 0.0

    def report(entry: ModelEntry, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < HASH_EVENT_SECONDS:
            return
        last = now
        data = {"model_id": entry.id, "path": entry.path, "bytes_done": done}
        data |= {"bytes_total": total, "progress": round(done / total, 4) if total else 1.0}
        events.publish({"type": "model_hash", "data": data})

    return report


async def model_hash(request: Request) -> JSONResponse:
    """SHA-256 of a model file (cached while the file is unchanged). The answer waits for the
    digest (on a thread of its own; ~1.5 GB/s from a warm cache); meanwhile subscribers of
    /api/events and /ws see ``model_hash`` progress events."""
    req = await body(request, ModelIdRequest)
    return JSONResponse(await _hash(request, req.model_id))


async def model_validate(request: Request) -> JSONResponse:
    """Check a model file's header, its required companions and its tensor dtypes; with
    ``load_test``, also load it in the engine (a failed load is a failed check)."""
    req = await body(request, ValidateRequest)
    report = await _registry_call(request, model_info.validate, req.model_id)
    if req.load_test:
        report["checks"].append(await _load_check(request, req.model_id, report))
        report["valid"] = all(c["ok"] for c in report["checks"])
    return JSONResponse(report)


async def _load_check(request: Request, name: str, report: dict[str, Any]) -> dict[str, Any]:
    check: dict[str, Any] = {"name": "load", "ok": False, "skipped": False}
    if not report["valid"]:
        return {**check, "skipped": True, "message": "not tried: the checks above failed"}
    try:
        loaded = await _load(request, name)
    except InvalidArgument as exc:  # a LoRA, a VAE...: loaded only together with a model
        return {**check, "ok": True, "skipped": True, "message": str(exc)}
    except (ServerError, SdcppError) as exc:
        _, code, message = lookup(exc)
        return {**check, "message": message, "code": code}
    return {**check, "ok": True, "message": f"loaded in {loaded['load_time']:.2f}s"}


async def _load(request: Request, name: str) -> dict[str, Any]:
    entry, _ = await _registry_call(request, model_info.loadable_path, name)
    # Planned the way a job for this model is, so that job finds this context loaded.
    plan = functools.partial(load_params, threads=request.app.state.settings.threads)
    params = await _registry_call(request, plan, entry.id)
    final = await _engine_call(request, request.app.state.jobs.load_model, params)
    if final.get("type") != "loaded":
        raise load_failed(final)
    return {
        "message": "Model loaded successfully",
        "model": entry.id,
        "name": entry.name,
        "load_time": final.get("load_time", 0.0),
    }


async def _unload(request: Request, name: str) -> dict[str, Any]:
    entry, path = await _registry_call(request, model_info.loadable_path, name)
    jobs = request.app.state.jobs
    if path not in jobs.loaded_models:
        raise ModelNotLoaded(f"model is not loaded: {name}")
    if users := await run_in_threadpool(jobs.model_users, path):
        raise ModelInUse(f"{len(users)} queued or running job(s) use {entry.name}")
    final = await _engine_call(request, jobs.unload_model, path)
    if final.get("type") != "unloaded":
        raise JobFailed("INTERNAL_ERROR", str(final.get("error") or "unload failed"))
    return {"message": "Model unloaded successfully", "model": entry.id, "name": entry.name}


async def model_load(request: Request) -> JSONResponse:
    """Load a model into the engine (waits for the running job). A model whose files fail
    their checks is refused (422) and the model loaded before stays loaded."""
    return JSONResponse(await _load(request, request.path_params["model_id"]))


async def model_unload(request: Request) -> JSONResponse:
    """Unload a loaded model: 409 if it is not loaded, or a queued/running job uses it; the
    other loaded models stay."""
    return JSONResponse(await _unload(request, request.path_params["model_id"]))


async def _hash(request: Request, name: str) -> dict[str, Any]:
    fn = functools.partial(model_info.hash_model, progress=_hash_progress(request))
    return await _registry_call(request, fn, name, hashing=True)


async def _validate(request: Request, name: str) -> dict[str, Any]:
    return await _registry_call(request, model_info.validate, name)


def caller_is_admin(request: Request) -> bool:
    """Whether the caller may overwrite model files. Without auth every caller is (nothing in
    the scope); with auth, the user the auth middleware put in ``scope["user"]`` decides."""
    if "user" not in request.scope:
        return True
    user = request.scope["user"]
    return bool(getattr(user, "is_admin", False) or getattr(user, "role", None) == "admin")


async def model_convert(request: Request) -> JSONResponse:
    """Queue a conversion to GGUF (202 with the job id); refusals are 400 (bad type, output
    path, existing file), 404 (unknown model or VAE), 409 (same output queued), 507 (space)."""
    req = await body(request, ConvertRequest)
    owner = identity_of(request.scope).job_owner if "user" in request.scope else None
    submit = request.app.state.generation.submit_convert
    job, plan = await run_in_threadpool(submit, req, owner, caller_is_admin(request))
    return JSONResponse(
        {
            "request_id": job.id,
            "job_id": job.id,
            "status": "queued",
            "message": "Conversion queued successfully",
            "output_path": plan.output_rel,
            "quantization_type": plan.type.value,
            "estimated_bytes": plan.estimated_bytes,
        },
        status_code=202,
    )


async def model_upload(request: Request) -> JSONResponse:
    """Upload a model file: the body is the file; the query names it (``type``, ``filename``,
    ``subfolder``, ``overwrite``). 201 with the registered entry once its header checks out;
    400 bad name, 409 exists, 413 too large, 422 not a model file, 507 no space."""
    q = request.query_params
    settings, registry = request.app.state.settings, request.app.state.registry
    limit = settings.max_upload_mb * 2**20
    target = await run_in_threadpool(
        uploads.plan_upload,
        registry,
        q.get("type"),
        q.get("filename"),
        subfolder=q.get("subfolder") or None,
        overwrite=q.get("overwrite", "").lower() in ("1", "true", "yes"),
        is_admin=caller_is_admin(request),
    )
    uploads.check_length(request, target, limit)
    tmp = await uploads.receive(request, target, limit)
    try:
        limiter = _limiter(request, "hash_limiter", HASH_CONCURRENCY)  # reads whole headers
        result = await anyio.to_thread.run_sync(
            uploads.install, registry, tmp, target, limiter=limiter
        )
    finally:
        tmp.unlink(missing_ok=True)
    return JSONResponse(result, status_code=201)


_BATCH_ACTIONS = {"load": _load, "unload": _unload, "hash": _hash, "validate": _validate}


async def model_batch(request: Request) -> JSONResponse:
    """One action on several models, in order; a failure is reported and the rest go on."""
    req = await body(request, ModelBatchRequest)
    action = _BATCH_ACTIONS[req.action]
    results: list[dict[str, Any]] = []
    for name in req.model_ids:
        try:
            results.append(
                {"model_id": name, "success": True, "result": await action(request, name)}
            )
        except (ServerError, SdcppError) as exc:  # reported in the table's words
            status, code, message = lookup(exc)
            error = {"code": code, "message": message, "status_code": status}
            results.append({"model_id": name, "success": False, "error": error})
    succeeded = sum(r["success"] for r in results)
    return JSONResponse(
        {
            "action": req.action,
            "results": results,
            "succeeded": succeeded,
            "failed": len(results) - succeeded,
        }
    )


# Routes whose bodies exceed the server's body limit by design; they enforce their own.
OWN_BODY_LIMITS = ("/api/models/upload",)

# reading is for users, changing is for admins
ENDPOINTS: list[Endpoint] = [
    Endpoint("/api/models/directories", model_directories, access=USER),
    Endpoint("/api/models/stats", model_stats, access=USER),
    Endpoint("/api/models/hash", model_hash, ("POST",), ADMIN, body=ModelIdRequest),
    Endpoint("/api/models/validate", model_validate, ("POST",), USER, body=ValidateRequest),
    Endpoint("/api/models/batch", model_batch, ("POST",), ADMIN, body=ModelBatchRequest),
    Endpoint("/api/models/convert", model_convert, ("POST",), ADMIN, body=ConvertRequest),
    Endpoint("/api/models/upload", model_upload, ("POST",), ADMIN),
    Endpoint("/api/models/{model_id:str}/load", model_load, ("POST",), ADMIN),
    Endpoint("/api/models/{model_id:str}/unload", model_unload, ("POST",), ADMIN),
    # Last: it would take "stats" or "directories" for a model id.
    Endpoint("/api/models/{model_id:str}", model_detail, access=USER),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
