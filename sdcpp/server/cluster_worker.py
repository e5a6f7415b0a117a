"""What ``sdcpp worker`` runs: the engine, the converter and a ``ClusterJobService`` that
claims from the PostgreSQL queue, with no HTTP server and no data dir lock (many workers may
share one host's data dir)."""

from __future__ import annotations

import logging
from typing import Any

from ..registry import ModelRegistry
from .app import default_converter, default_engine
from .cluster import ClusterJobService
from .cluster_store import ClusterStore
from .events import EventBus
from .pgstore import PgJobStore
from .settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["Worker"]


class Worker:
    def __init__(self, settings: Settings, *, engine: Any = None) -> None:
        if not settings.database_url:
            raise ValueError("a worker needs a postgresql:// database")
        self.settings = settings
        settings.outputs_path.mkdir(parents=True, exist_ok=True)
        self.store = PgJobStore(settings.database_url, models=settings.worker_models)
        cluster = ClusterStore(settings.database_url)
        registry = ModelRegistry(settings.models_path, data_dir=settings.data_dir)
        self.engine = engine if engine is not None else default_engine(settings)
        self.service = ClusterJobService(
            settings,
            self.store,
            self.engine,
            EventBus(),  # no subscribers here: the API processes relay from the database
            {"convert": default_converter(settings, registry)},
            cluster=cluster,
            models=settings.worker_models,
            relay=False,
        )

    @property
    def location(self) -> str:
        return self.store.location

    def start(self) -> None:
        self.engine.start()
        self.service.start()

    def stop(self) -> None:
        """Drain: no new job; the running one gets ``shutdown_grace``, then goes back."""
        self.service.drain()
        self.service.stop()
        self.engine.stop()
        self.store.close()
