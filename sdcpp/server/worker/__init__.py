"""The engine worker of ``sdcpp serve``: a supervised child process that owns the loaded
models, and the client the server talks to it through (``EngineClient``).

Importing this package does not load the worker's engine-facing code (``process``, ``jobs``):
only the child process imports those.
"""

from __future__ import annotations

from .client import EngineClient, Event, WorkerError, WorkerStartError, WorkerStopped

__all__ = ["EngineClient", "Event", "WorkerError", "WorkerStartError", "WorkerStopped"]
