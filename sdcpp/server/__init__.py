"""``sdcpp serve``: the REST server (Starlette) over a supervised engine worker.

Layers (ARCHITECTURE.md): routers (HTTP only) -> schemas (pydantic) -> services -> the engine
client (one child process owns the native contexts). Nothing here imports ``sdcpp._native``.
"""

from __future__ import annotations

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
