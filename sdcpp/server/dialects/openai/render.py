"""OpenAI's error envelope ``{error: {message, type, param, code}}`` from the one error table."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from ....registry.errors import ModelNotFoundError
from ...errors import EXCEPTION_TABLE, ApiError
from ...store import QueueFull
from .schemas import SizeError


def _status(exc: Exception) -> tuple[int, str | None, str]:
    """(status, param, OpenAI code) for ``exc``; statuses come from the server's one table."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err.get("loc", ())) or None
        if err.get("type") == "extra_forbidden":
            return 400, param, "unknown_parameter"
        return 400, param, "invalid_value"
    if isinstance(exc, SizeError):
        return 400, "size", "invalid_value"
    if isinstance(exc, ModelNotFoundError):
        return 404, "model", "model_not_found"
    if isinstance(exc, ApiError):
        return exc.status, None, exc.code.lower()
    if isinstance(exc, HTTPException):
        return exc.status_code, None, "http_error"
    if isinstance(exc, QueueFull):
        return 503, None, "queue_full"
    for exc_type, status, code in EXCEPTION_TABLE:
        if isinstance(exc, exc_type):
            return (400 if status == 422 else status), None, code.lower()
    return 500, None, "internal_error"


def error_response(exc: Exception) -> JSONResponse:
    status, param, code = _status(exc)
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
        if code == "unknown_parameter":
            message = f"Unknown parameter: '{param}'."
    elif status >= 500 and not isinstance(exc, ApiError | QueueFull):
        message = "internal server error"  # never leak internals
    else:
        message = getattr(exc, "message", None) or str(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    body: dict[str, Any] = {
        "error": {"message": message, "type": kind, "param": param, "code": code}
    }
    return JSONResponse(body, status_code=status)
