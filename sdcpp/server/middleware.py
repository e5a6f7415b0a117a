"""Pure ASGI middleware: request ids and the request body size limit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import envelope

Handler = Any


class RequestIdMiddleware:
    """Gives every request an id (or keeps a sane client-sent X-Request-ID) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if 0 < len(sent) <= 64 and sent.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming, and
    bodies that take longer than ``body_timeout`` seconds to arrive with 408 (a client that
    trickles its body must not hold a request open for ever). Paths in ``exempt`` enforce
    limits of their own (model uploads: gigabytes over slow links)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        exempt: tuple[str, ...] = (),
        body_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        deadline: float | None = None
        complete = False
        started = False

        async def limited() -> Message:
            nonlocal seen, deadline, complete
            if complete or self.body_timeout is None:  # e.g. a stream waiting for disconnect
                message = await receive()
            else:
                loop = asyncio.get_running_loop()
                deadline = deadline or loop.time() + self.body_timeout
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise _TooSlow from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def sent(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sent)
        except _TooLarge:
            await self._refuse(scope, receive, send)
        except _TooSlow:
            if started:  # too late to answer: uvicorn closes the connection
                raise
            message = f"the request body did not arrive within {self.body_timeout:g} s"
            # Connection: close, so the server drops the client instead of reading on.
            await _refuse(scope, receive, send, 408, "REQUEST_TIMEOUT", message)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.max_bytes} bytes"
        await _refuse(scope, receive, send, 413, "PAYLOAD_TOO_LARGE", message)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    from starlette.responses import JSONResponse

    headers = {"Connection": "close"} if status == 408 else None
    response = JSONResponse(
        envelope(Request(scope), status, code, message), status_code=status, headers=headers
    )
    await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass
