"""The native dialect (seed 004 / seed 002): its route table, one resource per module
(generation, queue, catalog, events; models and images beside them).

Each route is declared once, as a ``routing.Endpoint`` (path, handler, methods, access level,
request body); the served routes, the OpenAPI body map and the access rules are derived from
``ENDPOINTS``."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.routing import BaseRoute

from ..auth.permissions import ADMIN, CAPABILITY, GUEST, OWNED, PUBLIC, USER
from ..routing import Endpoint, bodies, starlette_routes
from ..schemas.native import CancelRequest, Text2ImgRequest, UpscaleRequest
from . import presets
from .catalog import (
    models_list,
    models_refresh,
    models_types,
    parameters,
    samplers,
    schedulers,
    validate,
)
from .events import events_sse, events_ws
from .generation import GENERATE_KINDS, generate, generate_result, generate_sync, upscale
from .queue import job_output, job_preview, queue_cancel, queue_clear, queue_job, queue_status

__all__ = ["BODIES", "ENDPOINTS", "routes"]

_OUTPUT = "{job_id:str}/output/{filename:str}"
ENDPOINTS: list[Endpoint] = [
    # generation: queue a job (202), or wait for it (/api/v1/generate)
    Endpoint("/api/generate/upscale", upscale, ("POST",), USER, body=UpscaleRequest),
    *(
        Endpoint(f"/api/generate/{name}", generate, ("POST",), USER, model, f"generate_{name}")
        for name, (_, model) in GENERATE_KINDS.items()
    ),
    Endpoint("/api/generate/{kind:str}", generate, ("POST",), USER),  # unknown kinds: 404
    Endpoint("/api/v1/generate", generate_sync, ("POST",), USER, body=Text2ImgRequest),
    Endpoint("/api/v1/generate/{job_id:str}", generate_result, access=OWNED),
    # the queue: the caller's own jobs (admins: all); another user's job is a 404
    Endpoint("/api/queue/status", queue_status, access=USER),
    Endpoint("/api/queue/job/{job_id:str}", queue_job, ("GET", "DELETE"), OWNED),
    Endpoint("/api/queue/job/{job_id:str}/preview", job_preview, access=OWNED),
    # outputs: the owner, an admin, or a signed capability URL from the job's JSON
    Endpoint(f"/api/queue/job/{_OUTPUT}", job_output, access=CAPABILITY),
    Endpoint(f"/api/v1/jobs/{_OUTPUT}", job_output, access=CAPABILITY),
    Endpoint("/api/queue/cancel", queue_cancel, ("POST",), OWNED, body=CancelRequest),
    Endpoint("/api/queue/clear", queue_clear, ("POST",), USER),
    # the catalog: reading is for guests, rescanning for admins
    Endpoint("/api/models", models_list, access=GUEST),
    Endpoint("/api/v1/models", models_list, access=GUEST),
    Endpoint("/api/models/types", models_types, access=GUEST),
    Endpoint("/api/models/refresh", models_refresh, ("POST",), ADMIN),
    Endpoint("/api/samplers", samplers, access=GUEST),
    Endpoint("/api/schedulers", schedulers, access=GUEST),
    Endpoint("/api/parameters", parameters, access=GUEST),
    Endpoint("/api/validate", validate, ("POST",), PUBLIC, body=Text2ImgRequest),
    # events: the caller's own jobs' (admins: all)
    Endpoint("/api/events", events_sse, access=USER),
    Endpoint("/api/events/{job_id:str}", events_sse, access=OWNED),
    Endpoint("/ws", events_ws, access=USER, websocket=True),
    *presets.ENDPOINTS,  # before models' /api/models/{model_id}
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
