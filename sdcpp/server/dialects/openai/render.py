"""OpenAI's error envelope ``{error: {message, type, param, code}}`` from the one error table."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from ....jobspec import SpecError
from ....registry.errors import ModelNotFoundError
from ...auth.permissions import Guard
from ...errors import EXCEPTION_TABLE, ApiError
from ...store import QueueFull, QuotaExceeded
from .forms import FormError
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
    if isinstance(exc, FormError):
        return 400, exc.param, exc.code
    if isinstance(exc, SpecError):
        return 400, None, "invalid_value"
    if isinstance(exc, ModelNotFoundError):
        return 404, "model", "model_not_found"
    if isinstance(exc, ApiError):
        return exc.status, None, exc.code.lower()
    if isinstance(exc, HTTPException):
        return exc.status_code, None, "http_error"
    if isinstance(exc, QuotaExceeded):
        return 429, None, "rate_limit_exceeded"
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
    elif isinstance(exc, HTTPException):
        message = str(exc.detail)
    else:
        message = getattr(exc, "message", None) or str(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    body: dict[str, Any] = {
        "error": {"message": message, "type": kind, "param": param, "code": code}
    }
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
    if isinstance(exc, ApiError | HTTPException) and exc.headers:  # e.g. a drain's Retry-After
        headers = dict(exc.headers)
    return JSONResponse(body, status_code=status, headers=headers)


# the access guard's refusals, in OpenAI's words (the SDK maps 401/403 by status)
_REFUSALS = {
    "AUTH_REQUIRED": "You didn't provide an API key: use 'Authorization: Bearer <sdcpp API key>'.",
    "INVALID_CREDENTIALS": "Incorrect API key provided.",
}
_REFUSAL_CODES = {401: "invalid_api_key", 403: "insufficient_permissions"}


class OpenAIGuard(Guard):
    """The route's access guard, its 401/403 answered in OpenAI's envelope."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await super().__call__(scope, receive, watch)
        except ApiError as exc:
            if started or exc.status not in _REFUSAL_CODES:
                raise
            reason = _REFUSALS.get(exc.code, exc.message)
            if exc.code == "INVALID_CREDENTIALS":
                reason = f"{reason} ({exc.message})"
            body = {
                "error": {
                    "message": reason,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": _REFUSAL_CODES[exc.status],
                }
            }
            answer = JSONResponse(body, status_code=exc.status, headers=exc.headers)
            await answer(scope, receive, send)
