"""OpenAI's error envelope ``{error: {message, type, param, code}}`` from the one error table."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from ....registry.errors import ModelNotFoundError
from ...auth.permissions import Guard
from ...errors import error_headers, lookup
from ...exceptions import ServerError
from .forms import FormError
from .schemas import SizeError

# the table's codes that OpenAI's API spells its own way
_CODES = {
    "VALIDATION_ERROR": "invalid_value",
    "INVALID_PARAMETERS": "invalid_value",
    "MODEL_NOT_FOUND": "model_not_found",
    "QUEUE_QUOTA_EXCEEDED": "rate_limit_exceeded",
}


def openai_status(status: int) -> int:
    """The table's status as this dialect answers it: OpenAI's API has no 422 — its clients
    expect every refused request as 400 — so a 422 of the table is a 400 here."""
    return 400 if status == 422 else status


def _status(exc: Exception) -> tuple[int, str | None, str, str]:
    """(status, param, OpenAI code, message) for ``exc``, from the server's one table; only
    this dialect's own request checks (its schema, sizes, form parts) are its own."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err.get("loc", ())) or None
        if err.get("type") == "extra_forbidden":
            return 400, param, "unknown_parameter", f"Unknown parameter: '{param}'."
        message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
        return 400, param, "invalid_value", message
    if isinstance(exc, SizeError):
        return 400, "size", "invalid_value", str(exc)
    if isinstance(exc, FormError):
        return 400, exc.param, exc.code, exc.message
    status, code, message = lookup(exc)
    param = "model" if isinstance(exc, ModelNotFoundError) else None
    return openai_status(status), param, _CODES.get(code, code.lower()), message


def error_response(exc: Exception) -> JSONResponse:
    status, param, code, message = _status(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    body: dict[str, Any] = {
        "error": {"message": message, "type": kind, "param": param, "code": code}
    }
    return JSONResponse(body, status_code=status, headers=error_headers(exc))


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
        except ServerError as exc:
            status, code, _ = lookup(exc)
            if started or status not in _REFUSAL_CODES:
                raise
            reason = _REFUSALS.get(code, exc.message)
            if code == "INVALID_CREDENTIALS":
                reason = f"{reason} ({exc.message})"
            body = {
                "error": {
                    "message": reason,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": _REFUSAL_CODES[status],
                }
            }
            answer = JSONResponse(body, status_code=status, headers=exc.headers)
            await answer(scope, receive, send)
