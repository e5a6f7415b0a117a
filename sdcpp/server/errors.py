"""The one error table, and the native dialect's envelope (seed 004) made from it.

    {"error": {"message", "code", "status_code", "request_id", "timestamp"}}

Routes raise exceptions — the library's, the registry's, the job spec's, or the server's own
(``exceptions.py``) — and never build envelopes or write a status or code. ``EXCEPTION_TABLE``
maps every exception type to (status, code) by type, never by parsing its message;
``lookup(exc)`` gives any exception's (status, code, message) from it and ``error_headers``
its headers, for the native envelope here and for each dialect's own shape;
``status_for_code`` gives the status of a job that failed with a code (the worker's
``failed.code``), so a failure answers the same status on every route.
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
from . import exceptions as ex
from .exceptions import JobFailed, ServerError
from .store import QueueFull, QuotaExceeded

logger = logging.getLogger(__name__)


class ApiError(ServerError):
    """A failure with an explicit status and code, for a code the table does not hold (an
    extension's). The server itself raises the typed exceptions of ``exceptions.py``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers)
        self.status, self.code = status, code


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
    # the server's own (exceptions.py)
    (ex.UrlNotAllowed, 400, "URL_NOT_ALLOWED"),
    (ex.AuthNotEnabled, 400, "AUTH_NOT_ENABLED"),
    (ex.BadRequest, 400, "INVALID_PARAMETERS"),
    (ex.AuthRequired, 401, "AUTH_REQUIRED"),
    (ex.InvalidCredentials, 401, "INVALID_CREDENTIALS"),
    (ex.FeatureDisabled, 403, "FEATURE_DISABLED"),
    (ex.Forbidden, 403, "INSUFFICIENT_PERMISSIONS"),
    (ex.JobNotFound, 404, "JOB_NOT_FOUND"),
    (ex.UserNotFound, 404, "USER_NOT_FOUND"),
    (ex.KeyNotFound, 404, "KEY_NOT_FOUND"),
    (ex.NotFound, 404, "NOT_FOUND"),
    (ex.JobActive, 409, "JOB_ACTIVE"),
    (ex.JobNotCancellable, 409, "JOB_NOT_CANCELLABLE"),
    (ex.ModelNotLoaded, 409, "MODEL_NOT_LOADED"),
    (ex.ModelInUse, 409, "MODEL_IN_USE"),
    (ex.ModelExists, 409, "MODEL_EXISTS"),
    (ex.UserExists, 409, "USER_EXISTS"),
    (ex.CannotChangeSelf, 409, "CANNOT_CHANGE_SELF"),
    (ex.ConversionInProgress, 409, "CONVERSION_IN_PROGRESS"),
    (ex.PresetExists, 409, "PRESET_EXISTS"),
    (ex.Conflict, 409, "CONFLICT"),
    (ex.PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
    (ex.ModelInvalid, 422, "MODEL_INVALID"),
    (ex.ScriptNotFound, 422, "SCRIPT_NOT_FOUND"),
    (ex.RateLimited, 429, "RATE_LIMITED"),
    (ex.ClientGone, 499, "CANCELLED"),
    (ex.DownloadFailed, 502, "DOWNLOAD_FAILED"),
    (ex.ShuttingDown, 503, "SHUTTING_DOWN"),
    (ex.Unavailable, 503, "SERVICE_UNAVAILABLE"),
    (ex.DownloadTimeout, 504, "DOWNLOAD_TIMEOUT"),
    (ex.InsufficientStorage, 507, "INSUFFICIENT_STORAGE"),
    (lib.SdcppError, 500, "INTERNAL_ERROR"),
]
# Codes a job can end with that no exception above carries (the dispatcher's own).
_JOB_CODES = {"TIMEOUT": 504}
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


def shutting_down(retry_after: int) -> ex.ShuttingDown:
    """503 while the server drains for a shutdown (``JobService.drain``): reads still work."""
    headers = {"Retry-After": str(max(1, retry_after))}
    message = "the server is shutting down and takes no new jobs; try again shortly"
    return ex.ShuttingDown(message, headers=headers)


def error_response(request: Request, exc: Exception) -> JSONResponse:
    status, code, message = lookup(exc)
    return JSONResponse(
        envelope(request, status, code, message), status_code=status, headers=error_headers(exc)
    )


def lookup(exc: BaseException, *, input_errors: bool = False) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of any exception, from the one table: what every
    dialect renders in its own shape. An unexpected error's message is logged, never shown.

    ``input_errors``: for the dialects whose own input checks raise a plain ``ValueError`` (as
    the FastAPI servers they imitate do), such an error the table does not know is a 400 with
    its message; elsewhere it is an unexpected error like any other."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, JobFailed):
        return status_for_code(exc.code), exc.code, exc.message
    if isinstance(exc, HTTPException):
        return exc.status_code, _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"), str(exc.detail)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return 507, "INSUFFICIENT_STORAGE", "the server's disk is full; nothing was stored"
    status, code = _lookup(exc)
    if input_errors and status == 500 and isinstance(exc, ValueError):
        return 400, "INVALID_PARAMETERS", str(exc)
    if isinstance(exc, ValidationError):
        return status, code, _validation_message(exc)
    if isinstance(exc, QueueFull):
        return status, code, _queue_message(exc)
    if isinstance(exc, ServerError):
        return status, code, exc.message
    if status == 500 and not isinstance(exc, lib.SdcppError):
        logger.exception("unhandled error", exc_info=exc)
        return status, code, "internal server error"  # never leak an unexpected error's internals
    return status, code, str(exc)


def error_headers(exc: BaseException) -> dict[str, str] | None:
    """The headers an error answer carries: ``Retry-After`` of a full queue (roughly when the
    running job frees a slot, the store's estimate) or a drain, a 401's challenge."""
    if isinstance(exc, QueueFull):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, ServerError):
        return exc.headers
    if isinstance(exc, HTTPException):
        return dict(exc.headers) if exc.headers else None
    return None


def _queue_message(exc: QueueFull) -> str:
    if isinstance(exc, QuotaExceeded):  # a user at their own quota (``max_queue_per_user``)
        return f"you have {exc.queued} jobs queued, the most allowed; try again later"
    return "the queue is full, try again later"


def status_for_code(code: str | None) -> int:
    """The HTTP status of a job that ended with ``code`` (e.g. a worker's MODEL_LOAD_FAILED is
    422 wherever it surfaces: a model load, a waiting generate); unknown codes are 500s."""
    return _JOB_CODES.get(code or "") or _CODE_STATUS.get(code or "", 500)


def job_error(job: Any) -> JobFailed | lib.Cancelled:
    """The exception a route raises for a job it waited on that did not complete."""
    if job.status == "cancelled":
        return lib.Cancelled(job.error or "cancelled")
    return JobFailed(str(job.result.get("code") or "INTERNAL_ERROR"), job.error or job.status)


def load_failed(final: dict[str, Any]) -> JobFailed:
    """The exception for a model load the worker answered with ``failed``: its own code
    where the table knows it (INVALID_PARAMETERS, MODEL_NOT_FOUND...), otherwise a
    MODEL_LOAD_FAILED (422) — a load that failed unexpectedly is still a failed load."""
    code = str(final.get("code") or "MODEL_LOAD_FAILED")
    if status_for_code(code) == 500:
        code = "MODEL_LOAD_FAILED"
    return JobFailed(code, str(final.get("error") or "the model could not be loaded"))


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
