"""The native dialect (seed 004 / seed 002): its route table and request bodies, one
resource per module (generation, queue, catalog, events; models and images beside them)."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route, WebSocketRoute

from ..routing import bodies, starlette_routes
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

__all__ = ["BODIES", "routes"]


BODIES: dict[tuple[str, str], type[BaseModel]] = {
    **{("POST", f"/api/generate/{name}"): model for name, (_, model) in GENERATE_KINDS.items()},
    ("POST", "/api/generate/upscale"): UpscaleRequest,
    ("POST", "/api/v1/generate"): Text2ImgRequest,
    ("POST", "/api/queue/cancel"): CancelRequest,
    ("POST", "/api/validate"): Text2ImgRequest,
    **bodies(presets.ENDPOINTS),
}


def routes() -> list[BaseRoute]:
    return [
        Route("/api/generate/upscale", upscale, methods=["POST"]),
        *(
            Route(f"/api/generate/{name}", generate, methods=["POST"], name=f"generate_{name}")
            for name in GENERATE_KINDS
        ),
        Route("/api/generate/{kind:str}", generate, methods=["POST"]),  # unknown kinds: 404
        Route("/api/v1/generate", generate_sync, methods=["POST"]),
        Route("/api/v1/generate/{job_id:str}", generate_result),
        Route("/api/queue/status", queue_status),
        Route("/api/queue/job/{job_id:str}", queue_job, methods=["GET", "DELETE"]),
        Route("/api/queue/job/{job_id:str}/preview", job_preview),
        Route("/api/queue/job/{job_id:str}/output/{filename:str}", job_output),
        Route("/api/v1/jobs/{job_id:str}/output/{filename:str}", job_output),
        Route("/api/queue/cancel", queue_cancel, methods=["POST"]),
        Route("/api/queue/clear", queue_clear, methods=["POST"]),
        Route("/api/models", models_list),
        Route("/api/v1/models", models_list),
        Route("/api/models/types", models_types),
        Route("/api/models/refresh", models_refresh, methods=["POST"]),
        Route("/api/samplers", samplers),
        Route("/api/schedulers", schedulers),
        Route("/api/parameters", parameters),
        Route("/api/validate", validate, methods=["POST"]),
        Route("/api/events", events_sse),
        Route("/api/events/{job_id:str}", events_sse),
        WebSocketRoute("/ws", events_ws),
        *starlette_routes(presets.ENDPOINTS),  # before models' /api/models/{model_id}
    ]
