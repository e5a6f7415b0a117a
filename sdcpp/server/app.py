"""``create_app(settings)``: routes, middleware, exception handlers and lifespan in one place."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ..errors import InvalidArgument, SdcppError
from ..registry import ModelRegistry
from .auth import AuthMiddleware, AuthService, guard_routes
from .auth.permissions import access_of
from .cluster import RemoteEngine, job_service
from .datadir import DataDirLock
from .dialects.a1111 import router as a1111_api
from .dialects.diffusionapi import router as diffusionapi
from .dialects.lightdiffusion import router as lightdiffusion
from .dialects.openai import router as openai_api
from .errors import error_response
from .events import EventBus
from .exceptions import ServerError
from .generation import GenerationService
from .logs import AccessLogMiddleware, worker_level
from .metrics import Metrics
from .metrics import routes as metrics_routes
from .middleware import BodyLimitMiddleware, RequestIdMiddleware
from .openapi import build_openapi
from .routers import auth as auth_api
from .routers import images, models, native, system
from .routing import declared_rules
from .settings import Settings
from .store import QueueFull
from .store_api import open_job_store
from .trusted_host import CrossSiteMiddleware, TrustedHostMiddleware
from .webui import routes as webui_routes
from .webui import setup as webui_setup

logger = logging.getLogger(__name__)


def default_engine(settings: Settings) -> Any:
    from .worker.client import EngineClient

    env = {"SDCPP_TEST_HOOKS": "1"} if settings.test_hooks else {}
    env["SDCPP_WORKER_LOG_LEVEL"] = worker_level(settings)  # what it forwards to our log
    worker = {
        "env": env,
        "nice": settings.worker_nice,
        "idle_priority": settings.worker_idle_priority,
        "max_loaded_models": settings.max_loaded_models,
        "model_memory_mb": settings.model_memory_mb,
        "keep_alive": settings.keep_alive,
        "memory_mb": settings.worker_memory_mb,
    }
    return EngineClient(worker, cancel_grace=settings.cancel_grace)


def default_converter(settings: Settings, registry: ModelRegistry) -> Any:
    from .worker.converter import ConvertRunner, remove_stale_staging

    remove_stale_staging(settings.models_path)  # no job runs yet: every staging dir is stale
    env = {"SDCPP_TEST_HOOKS": "1"} if settings.test_hooks else {}
    return ConvertRunner(registry, env=env, nice=settings.worker_nice)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Any = None,
    converter: Any = None,
    data_lock: DataDirLock | None = None,
) -> Starlette:
    """The server app. ``engine`` replaces the worker client, ``converter`` the runner of
    ``convert`` jobs (tests use fake ones). ``data_lock``: the data dir lock, already held
    (``sdcpp serve`` takes it before binding the port); otherwise the lifespan takes it."""
    settings = settings or Settings()
    if "*" in settings.cors_origins and len(settings.cors_origins) > 1:
        raise InvalidArgument("cors origin '*' cannot be combined with other origins")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = app.state
        for folder in (settings.data_dir, settings.outputs_path):
            folder.mkdir(parents=True, exist_ok=True)
        # One server per data dir (datadir.py): before the store, so no job is recovered twice.
        state.data_lock = data_lock if data_lock is not None else DataDirLock(settings.data_dir)
        if not state.data_lock.held:
            state.data_lock.acquire()
        state.settings, state.started = settings, time.time()
        state.build_time = datetime.now(UTC).isoformat(timespec="seconds")
        state.metrics = Metrics()  # per app: its own registry (metrics.py)
        state.events = EventBus()
        state.events.listen(state.metrics.observe)
        state.auth = AuthService(settings)
        state.store = open_job_store(settings)  # SQLite, or PostgreSQL with --database
        state.registry = ModelRegistry(settings.models_path, data_dir=settings.data_dir)
        state.registry.ensure_layout()
        found = state.registry.refresh().found
        if not found:
            logger.warning(
                "no models yet: put checkpoints (.safetensors/.gguf) in %s",
                settings.models_path / "checkpoints",
            )
        if engine is not None:
            state.engine = engine
        else:  # --no-worker: the jobs run in `sdcpp worker` processes
            state.engine = default_engine(settings) if settings.run_worker else RemoteEngine()
        state.engine.start()
        state.converter = converter or default_converter(settings, state.registry)
        state.jobs = job_service(  # on PostgreSQL: progress, cancels, workers across processes
            settings, state.store, state.engine, state.events, {"convert": state.converter}
        )
        state.generation = GenerationService(settings, state.registry, state.jobs)
        state.generation.url_image = functools.partial(images.url_image, state)
        if state.auth.enabled:  # job JSON hands out signed (capability) output URLs
            state.jobs.output_url = state.auth.output_url
        state.jobs.start()
        state.metrics.bind(state)
        state.openapi = build_openapi(
            app.routes,
            {
                **native.BODIES,
                **images.BODIES,
                **models.BODIES,
                **auth_api.BODIES,
                **openai_api.BODIES,
                **diffusionapi.BODIES,
                **lightdiffusion.BODIES,
                **a1111_api.BODIES,
            },
            access=functools.partial(access_of, declared=declared_rules(app.routes)),
        )
        try:
            yield
        finally:
            lightdiffusion.close(state)
            state.jobs.stop()
            state.engine.stop()
            state.store.close()
            state.auth.close()
            state.data_lock.release()

    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),  # sees the final status, 413s included
        Middleware(TrustedHostMiddleware, bind_host=settings.host, allowed=settings.allowed_hosts),
        Middleware(CrossSiteMiddleware, settings=settings),  # CSRF and WebSocket hijacking
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_mb * 2**20,
            body_timeout=settings.body_timeout,
            exempt=models.OWN_BODY_LIMITS,  # model uploads: gigabytes, limited by the route
        ),
    ]
    if settings.cors_origins:
        wildcard = settings.cors_origins == ("*",)
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["*"],
                allow_headers=["*"],
                allow_credentials=not wildcard,
            )
        )
    # Innermost: CORS preflights pass untouched and refusals still carry CORS headers.
    middleware.append(Middleware(AuthMiddleware))
    # Specific types are handled by Starlette's ExceptionMiddleware; `Exception` (the last resort)
    # by ServerErrorMiddleware, which also re-raises for the server log.
    handled = (ServerError, HTTPException, SdcppError, ValidationError, QueueFull, Exception)
    handlers = dict.fromkeys(handled, error_response)
    webui = webui_setup(settings.webui, settings.webui_dir)
    app = Starlette(
        # every route behind its access rule (auth/permissions.py)
        routes=guard_routes(
            [
                *system.routes(),
                *metrics_routes(),
                *auth_api.routes(),
                *native.routes(),
                *images.routes(),
                *models.routes(),
                *openai_api.routes(),
                *a1111_api.routes(),
                *diffusionapi.routes(),
                *lightdiffusion.routes(),
                *(webui_routes() if webui is not None else []),
            ]
        ),
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.webui = webui
    return app
