"""The native dialect's error envelope (seed 004), produced from one exception table.

    {"error": {"message", "code", "status_code", "request_id", "timestamp"}}

Routers raise ``ApiError`` (or let library errors through); ``error_response`` maps an exception
to (status, code) by its type, never by parsing its message.

``EXCEPTION_TABLE`` is the one table of every library and server exception; ``lookup(exc)``
gives any exception's (status, code, message) from it, for the native envelope here and for
each dialect's own shape; ``status_for_code`` gives the status of a job that failed with a
code (the worker's ``failed.code``), so a failure answers the same status on every route.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import errors as lib
from ..jobspec import LoraNotFound, SpecError
from ..registry.errors import ModelNotFoundError, RegistryError
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
    (LoraNotFound, 404, "NOT_FOUND"),  # a LoRA a prompt or ``loras`` names, before queuing
    # a request value out of the spec's limits (sdcpp.jobspec): a validation error like
    # the schema's own, e.g. a side the engine would change, naming the nearest valid ones
    (SpecError, 422, "VALIDATION_ERROR"),
    (ModelNotFoundError, 404, "MODEL_NOT_FOUND"),
    # also the registry's unsafe paths and ambiguous names (both InvalidArgument)
    (lib.InvalidArgument, 400, "INVALID_PARAMETERS"),
    (RegistryError, 409, "MODEL_CHANGED"),  # the file changed while it was being read
    (lib.ModelLoadError, 422, "MODEL_LOAD_FAILED"),
    (lib.UnsupportedError, 400, "INVALID_PARAMETERS"),
    (lib.Cancelled, 409, "JOB_CANCELLED"),
    (QuotaExceeded, 429, "QUEUE_QUOTA_EXCEEDED"),
    (QueueFull, 503, "QUEUE_FULL"),
    (ValidationError, 422, "VALIDATION_ERROR"),
    (lib.SdcppError, 500, "INTERNAL_ERROR"),
]
# Codes a job can end with that no exception above carries (the dispatcher's own).
_JOB_CODES = {"TIMEOUT": 504, "INSUFFICIENT_STORAGE": 507}
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk or quota: 507, not 500

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
    status, code, message = lookup(exc)
    return JSONResponse(
        envelope(request, status, code, message), status_code=status, headers=error_headers(exc)
    )


def lookup(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of any exception, from the one table: what every
    dialect renders in its own shape. An unexpected error's message is logged, never shown."""
    if isinstance(exc, QueueFull):
        exc = queue_full(exc)
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, HTTPException):
        return exc.status_code, _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"), str(exc.detail)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return 507, "INSUFFICIENT_STORAGE", "the server's disk is full; nothing was stored"
    status, code = _lookup(exc)
    if isinstance(exc, ValidationError):
        return status, code, _validation_message(exc)
    if status == 500 and not isinstance(exc, lib.SdcppError):
        logger.exception("unhandled error", exc_info=exc)
        return status, code, "internal server error"  # never leak an unexpected error's internals
    return status, code, str(exc)


def error_headers(exc: BaseException) -> dict[str, str] | None:
    """The headers an error answer carries (``Retry-After`` of a full queue or a drain)."""
    if isinstance(exc, QueueFull):
        exc = queue_full(exc)
    if isinstance(exc, ApiError):
        return exc.headers
    if isinstance(exc, HTTPException):
        return dict(exc.headers) if exc.headers else None
    return None


def status_for_code(code: str | None) -> int:
    """The HTTP status of a job that ended with ``code`` (e.g. a worker's MODEL_LOAD_FAILED is
    422 wherever it surfaces: a model load, a waiting generate); unknown codes are 500s."""
    return _JOB_CODES.get(code or "") or _CODE_STATUS.get(code or "", 500)


def job_error(job: Any) -> ApiError:
    """The error a route answers for a job that did not complete."""
    if job.status == "cancelled":
        return ApiError(409, "JOB_CANCELLED", job.error or "cancelled")
    code = str(job.result.get("code") or "INTERNAL_ERROR")
    return ApiError(status_for_code(code), code, job.error or job.status)


def _lookup(exc: BaseException) -> tuple[int, str]:
    for exc_type, status, code in EXCEPTION_TABLE:
        if isinstance(exc, exc_type):
            return status, code
    return 500, "INTERNAL_ERROR"


# error code -> status: the first table entry with that code wins (reversed: it is set last)
_CODE_STATUS = {code: status for _, status, code in reversed(EXCEPTION_TABLE)}


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts)
