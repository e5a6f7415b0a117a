"""System routes: health, readiness, status, version, configuration, hardware, restart, and
the API's own description (OpenAPI 3.1 and /docs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ... import __version__, engine_commit, engine_version
from ..auth.permissions import ADMIN, PUBLIC, USER
from ..routing import Endpoint, starlette_routes


async def health(request: Request) -> JSONResponse:
    return JSONResponse(
        {"status": "healthy", "timestamp": int(time.time()), "version": __version__}
    )


async def health_ok(request: Request) -> JSONResponse:
    """Seed 000's readiness probe (LightDiffusion-Next): /api/health keeps seed 004's shape."""
    return JSONResponse({"status": "ok"})


def _status(request: Request) -> dict[str, Any]:
    state = request.app.state
    counts = state.jobs.store.counts()
    data: dict[str, Any] = {
        "server": {
            "running": True,
            "host": state.settings.host,
            "port": state.settings.port,
            "uptime": int(time.time() - state.started),
        },
        "generation_queue": {
            "running": state.jobs.accepting,
            "queue_size": counts.get("queued", 0),
            "active_generations": counts.get("processing", 0),
        },
        "models": {
            "loaded_count": len(state.jobs.loaded_models),
            "available_count": len(state.registry),
        },
        "worker": {
            "state": state.engine.state,
            "pid": state.engine.pid,
            "restarts": state.engine.restarts,
        },
    }
    if (workers := getattr(state.jobs, "workers", None)) is not None:
        data["workers"] = workers()  # a PostgreSQL queue: every worker on it (cluster.py)
    return data


async def status(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_status, request))


async def readyz(request: Request) -> JSONResponse:
    """Ready for work: the worker is up, the database takes writes, no shutdown is under way;
    otherwise 503 with the reasons."""
    problems = await run_in_threadpool(request.app.state.jobs.readiness)
    return JSONResponse(
        {"ready": not problems, "worker": request.app.state.engine.state, "reasons": problems},
        status_code=503 if problems else 200,
    )


async def version(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "version": __version__,
            "type": "release",
            "commit": {"short": engine_commit()[:20], "full": engine_commit()},
            "engine_version": engine_version(),
            "branch": "main",
            "clean": True,
            "build_time": request.app.state.build_time,
        }
    )


async def config(request: Request) -> JSONResponse:
    s = request.app.state.settings
    return JSONResponse(
        {
            "config": {
                "host": s.host,
                "port": s.port,
                "models_dir": str(s.models_path),
                "output_dir": str(s.outputs_path),
                "max_queue": s.max_queue,
                "threads": s.threads,
                "cors_origins": list(s.cors_origins),
                "max_body_mb": s.max_body_mb,
            }
        }
    )


def _system_info(request: Request) -> dict[str, Any]:
    import os
    import shutil

    from ...cli.tools import build_info

    meminfo = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    data_dir = request.app.state.settings.data_dir
    disk = shutil.disk_usage(data_dir)
    info = build_info()
    return {
        "system": {
            "cpu": {
                "logical_cores": os.cpu_count(),
                "physical_cores": info["physical_cores"],
                "features": info["cpu_features"],
            },
            "memory": {"total": meminfo.get("MemTotal"), "available": meminfo.get("MemAvailable")},
            "disk": {"path": str(data_dir), "total": disk.total, "free": disk.free},
            "backends": ["cpu"],
            "engine": {"version": info["engine_version"], "commit": info["engine_commit"]},
            "capabilities": {
                "cancel": info["cancel"],
                "image": True,
                "upscale": True,
                "video": True,
                "websocket": True,
                "sse": True,
            },
            "worker": {
                "state": request.app.state.engine.state,
                "pid": request.app.state.engine.pid,
                "restarts": request.app.state.engine.restarts,
            },
        }
    }


async def system(request: Request) -> JSONResponse:
    """Hardware, memory, disk, backends and capabilities."""
    return JSONResponse(await run_in_threadpool(_system_info, request))


async def system_restart(request: Request) -> JSONResponse:
    """Restart the engine worker once the running job (if any) has finished."""
    request.app.state.jobs.request_engine_restart()
    return JSONResponse({"message": "Server restart initiated"}, status_code=202)


async def openapi_json(request: Request) -> JSONResponse:
    """This API as OpenAPI 3.1."""
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    """A readable index of the API."""
    from ..openapi import docs_html

    return Response(docs_html(request.app.state.openapi), media_type="text/html")


ENDPOINTS: list[Endpoint] = [
    Endpoint("/api/health", health, access=PUBLIC),
    Endpoint("/health", health_ok, access=PUBLIC),  # also seed 000's (dialects/lightdiffusion)
    Endpoint("/api/status", status, access=PUBLIC),
    Endpoint("/readyz", readyz, access=PUBLIC),
    Endpoint("/api/version", version, access=PUBLIC),
    Endpoint("/api/config", config, access=USER),
    Endpoint("/api/system", system, access=USER),
    Endpoint("/api/system/restart", system_restart, ("POST",), ADMIN),
    Endpoint("/openapi.json", openapi_json, access=PUBLIC),
    Endpoint("/docs", docs, access=PUBLIC),
]


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
