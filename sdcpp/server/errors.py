"""The native dialect's error envelope (seed 004), produced from one exception table.

    {"error": {"message", "code", "status_code", "request_id", "timestamp"}}

Routers raise ``ApiError`` (or let library errors through); ``error_response`` maps an exception
to (status, code) by its type, never by parsing its message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import errors as lib
from .store import QueueFull, QuotaExceeded

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def not_found(code: str, what: str) -> ApiError:
    return ApiError(404, code, what)


# exception type -> (HTTP status, error code); the first matching entry wins (subclasses first)
EXCEPTION_TABLE: list[tuple[type[BaseException], int, str]] = [
    (lib.InvalidArgument, 400, "INVALID_PARAMETERS"),
    (lib.ModelLoadError, 422, "MODEL_LOAD_FAILED"),
    (lib.UnsupportedError, 400, "INVALID_PARAMETERS"),
    (ValidationError, 422, "VALIDATION_ERROR"),
    (lib.SdcppError, 500, "INTERNAL_ERROR"),
]

_HTTP_CODES = {
    400: "INVALID_PARAMETERS",
    401: "AUTH_REQUIRED",
    403: "INSUFFICIENT_PERMISSIONS",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def envelope(request: Request | None, status: int, code: str, message: str) -> dict[str, Any]:
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    return {
        "error": {
            "message": message,
            "code": code,
            "status_code": status,
            "request_id": request_id,
            "timestamp": int(time.time()),
        }
    }


def queue_full(exc: QueueFull) -> ApiError:
    """503 with Retry-After: roughly when the running job frees a slot (the store's estimate);
    a user at their own quota (``max_queue_per_user``) gets 429."""
    headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, QuotaExceeded):
        message = f"you have {exc.queued} jobs queued, the most allowed; try again later"
        return ApiError(429, "QUEUE_QUOTA_EXCEEDED", message, headers=headers)
    return ApiError(503, "QUEUE_FULL", "the queue is full, try again later", headers=headers)


def shutting_down(retry_after: int) -> ApiError:
    """503 while the server drains for a shutdown (``JobService.drain``): reads still work."""
    headers = {"Retry-After": str(max(1, retry_after))}
    message = "the server is shutting down and takes no new jobs; try again shortly"
    return ApiError(503, "SHUTTING_DOWN", message, headers=headers)


def error_response(request: Request, exc: Exception) -> JSONResponse:
    headers: dict[str, str] | None = None
    if isinstance(exc, QueueFull):
        exc = queue_full(exc)
    if isinstance(exc, ApiError):
        status, code, message, headers = exc.status, exc.code, exc.message, exc.headers
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        code = _HTTP_CODES.get(status, "HTTP_ERROR")
        headers = dict(exc.headers) if exc.headers else None
    else:
        status, code = _lookup(exc)
        message = _validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        if status == 500 and not isinstance(exc, lib.SdcppError):
            logger.exception("unhandled error", exc_info=exc)
            message = "internal server error"  # never leak the internals of unexpected errors
    return JSONResponse(
        envelope(request, status, code, message), status_code=status, headers=headers
    )


def _lookup(exc: Exception) -> tuple[int, str]:
    for exc_type, status, code in EXCEPTION_TABLE:
        if isinstance(exc, exc_type):
            return status, code
    return 500, "INTERNAL_ERROR"


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts)
