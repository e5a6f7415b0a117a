"""Server logging: one stream for the API, uvicorn, the worker and the engine.

``configure(settings)`` (``sdcpp serve``) puts one handler on the root logger — stderr, or with
``--log-file`` a size-rotated file as well — at ``--log-level`` (seed 004's ``verbose``: debug),
in text or JSON lines (``--log-format json``). uvicorn runs with ``log_config=None``, so its
loggers propagate here too. The worker forwards its records (and the engine's, which reach it
on ``sdcpp.native``) over the pipe; ``worker/client.py`` logs them tagged ``source`` ``worker``
or ``engine`` and the worker's pid.

Context rides on ``contextvars``: ``job_context`` (the dispatcher thread, for the job it runs)
and the access middleware (each request) set ``job_id`` and ``request_id``, and a filter on the
handlers writes them into every record, so each line a job causes — in the server, the worker
or the engine — can be found by its job id.

``AccessLogMiddleware``: one line per request on ``sdcpp.access`` — request id, method, route
template, path (never the query string: signed URLs carry their signature there), status,
duration, user and client address; never a header, so never a token or key. Probes
(``/livez``, ``/readyz``, ``/metrics``, health) log at DEBUG. It also feeds the HTTP metrics.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

access_logger = logging.getLogger("sdcpp.access")

_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("sdcpp_job", default=None)
_REQUEST: contextvars.ContextVar[str | None] = contextvars.ContextVar("sdcpp_req", default=None)

# record attributes a JSON line carries when set (access lines, worker lines, context)
FIELDS = (
    "job_id",
    "request_id",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "user",
    "client",
    "source",
    "worker_pid",
)
PROBES = frozenset({"/livez", "/readyz", "/metrics", "/health", "/api/health"})
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Records logged in this thread (or task) meanwhile carry ``job_id``."""
    token = _JOB.set(job_id)
    try:
        yield
    finally:
        _JOB.reset(token)


class ContextFilter(logging.Filter):
    """Adds the current job and request ids to each record (unless the call gave its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _JOB.get()
        if getattr(record, "request_id", None) is None:
            record.request_id = _REQUEST.get()
        return True


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00,000 WARNING sdcpp.server.jobs [job 3f…] [req 9a…]: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(tags)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        tags = ""
        if job_id := getattr(record, "job_id", None):
            tags += f" [job {job_id}]"
        if request_id := getattr(record, "request_id", None):
            tags += f" [req {request_id}]"
        record.tags = tags
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the set ``FIELDS``, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def level_of(settings: Settings) -> int:
    name = "debug" if settings.verbose else settings.log_level
    return int(logging.getLevelName(name.upper()))


def configure(settings: Settings, *, replace: bool = True) -> list[logging.Handler]:
    """Install the server's handlers on the root logger; ``replace`` drops handlers already
    there (the CLI's ``basicConfig``). Returns the handlers installed (``unconfigure``)."""
    root = logging.getLogger()
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else TextFormatter()
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_max_mb * 2**20,
                backupCount=settings.log_backups,
                encoding="utf-8",
            )
        )
    if replace:
        for old in list(root.handlers):
            root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    root.setLevel(level_of(settings))
    # The engine's own chatter (per tensor, per step) only at debug.
    logging.getLogger("sdcpp.native").setLevel(
        logging.DEBUG if level_of(settings) <= logging.DEBUG else logging.WARNING
    )
    return handlers


def unconfigure(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


def worker_level(settings: Settings) -> str:
    """What the worker forwards: everything at debug, else warnings and worse."""
    return "debug" if level_of(settings) <= logging.DEBUG else "warning"


def _printable(text: str, limit: int = 512) -> str:
    """A client-chosen string fit for a log line: control characters (a percent-encoded
    newline would forge a line in the text format) escaped, long ones cut."""
    if text.isprintable() and len(text) <= limit:
        return text
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


class AccessLogMiddleware:
    """One access line per HTTP request, and the HTTP request metrics (see the docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = scope.get("state", {}).get("request_id")
        token = _REQUEST.set(request_id)
        status = 500  # an exception escaping the app becomes ServerErrorMiddleware's 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _REQUEST.reset(token)
            self._done(scope, status, time.perf_counter() - started, request_id)

    @staticmethod
    def _done(scope: Scope, status: int, seconds: float, request_id: str | None) -> None:
        route = str(scope.get("sdcpp.route") or UNMATCHED)
        method = str(scope.get("method", "GET"))
        metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
        if metrics is not None:
            metrics.observe_request(route, method, status, seconds)
        user = _printable(getattr(scope.get("user"), "username", None) or "-")
        client = scope.get("client")
        path = _printable(str(scope.get("path", "")))
        level = logging.DEBUG if path in PROBES else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        duration_ms = round(seconds * 1000, 1)
        access_logger.log(
            level,
            "%s %s %d %.1f ms user=%s",
            method,
            path,
            status,
            duration_ms,
            user,
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "user": user,
                "client": client[0] if client else None,
            },
        )
