"""Native catalog routes: model listing and refresh, samplers, schedulers, the parameter limits
(the one table in ``sdcpp.jobspec.limits``) and request validation."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from ... import cache_presets
from ...jobspec.limits import table as limits_table
from ...options import SampleMethod, Scheduler
from .. import model_info
from ..exceptions import BadRequest
from ..schemas.native import (
    Text2ImgRequest,
)
from .common import body


# -- models and utilities -----------------------------------------------------------------
async def models_list(request: Request) -> JSONResponse:
    q = request.query_params
    registry = request.app.state.registry
    loaded = request.app.state.jobs.loaded_models

    def build() -> dict[str, Any]:
        limit = int(q.get("limit", 50))
        page = model_info.list_models(
            registry,
            loaded,
            type=q.get("type") or None,
            search=q.get("search") or None,
            sort_by=q.get("sort_by", "name"),
            sort_order=q.get("sort_order", "asc"),
            limit=limit or None,
            page=int(q.get("page", 1)),
        )
        return {
            "models": [
                {**e.to_dict(), "loaded": model_info.is_loaded(registry, e, loaded)}
                for e in page.items
            ],
            "total": page.total,
            "page": page.page,
            "limit": limit,
        }

    try:
        return JSONResponse(await run_in_threadpool(build))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def models_types(request: Request) -> JSONResponse:
    from ...registry import ModelType

    return JSONResponse({"types": [(t.name or str(t.value)).lower() for t in ModelType]})


async def models_refresh(request: Request) -> JSONResponse:
    report = await run_in_threadpool(request.app.state.registry.refresh)
    return JSONResponse(
        {
            "message": "Model refresh completed",
            "models_found": len(report.found),
            "models_updated": len(report.updated),
            "models_removed": len(report.removed),
            **report.to_dict(),  # found/updated/removed: [{id, path}], total
        }
    )


async def samplers(request: Request) -> JSONResponse:
    return JSONResponse({"samplers": [m.value for m in SampleMethod]})


async def schedulers(request: Request) -> JSONResponse:
    return JSONResponse({"schedulers": [s.value for s in Scheduler]})


async def parameters(request: Request) -> JSONResponse:
    """Every bounded generation field from the one limits table (``sdcpp.jobspec.limits``),
    the engine's samplers and schedulers, and the step-cache presets and modes per family."""
    return JSONResponse(
        {
            "parameters": limits_table(),
            "samplers": [m.value for m in SampleMethod],
            "schedulers": [s.value for s in Scheduler],
            "output_formats": ["png", "jpeg", "webp"],
            "cache": {
                family.value: cache_presets.available(example)
                for family, example in cache_presets.FAMILY_EXAMPLES.items()
            },
        }
    )


async def validate(request: Request) -> JSONResponse:
    """A text2img body checked as a job would be: the schema, then the spec's limits (sizes
    the engine would change are refused naming the nearest valid ones)."""
    req = await body(request, Text2ImgRequest)
    req.to_spec().validate()  # SpecError -> 422 VALIDATION_ERROR (the error table)
    return JSONResponse({"valid": True, "parameters": req.model_dump(exclude_none=True)})
