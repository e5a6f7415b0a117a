"""Slow and greedy clients cannot pin the server: limits on each HTTP connection.

uvicorn (0.55) bounds the wait *between* requests (``timeout_keep_alive``) and the number of
connections (``limit_concurrency``: 503 beyond it), but not the time a client may take to send
its request headers, nor — with httptools — their size. A slowloris client that opens
connections and sends a header byte now and then would hold each one for ever, and with the
connection limit reached, lock everyone else out. ``with_header_timeout`` subclasses uvicorn's
protocol class (as ``auth/unix.py`` does) so that:

- from the moment a connection is made or a new request starts arriving, its headers must be
  complete within ``timeout`` seconds, else the client gets 408 and the connection closes;
- headers larger than ``max_bytes`` get 431 and the connection closes.

The body has its own deadline (``middleware.BodyLimitMiddleware``), and an event stream that
its client does not read gives up after ``sse_send_timeout`` (``event_stream``: sse-starlette's
``send_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # the request line and headers together

_408 = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def with_header_timeout(
    protocol_class: type[Any], timeout: float, max_bytes: int = MAX_HEADER_BYTES
) -> type[Any]:
    """A subclass of uvicorn's HTTP protocol class ``protocol_class`` (h11 or httptools) with
    the header deadline and size limit described above."""

    class HeaderLimits(protocol_class):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._awaiting_headers():
                self._arm()  # a new request starts: its headers have `timeout` from now
                self._header_bytes += len(data)
                if self._header_bytes > max_bytes:
                    self._refuse(_431, "request headers over %d bytes", max_bytes)
                    return
            super().data_received(data)
            if self.transport.get_protocol() is not self or not self._awaiting_headers():
                self._disarm()  # headers complete (or upgraded to a WebSocket)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            cycle = self.cycle
            return cycle is None or bool(cycle.response_complete)

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            self._header_bytes = 0
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                self._refuse(_408, "request headers not complete within %g s", timeout)

        def _refuse(self, response: bytes, why: str, value: float) -> None:
            self._disarm()
            client = getattr(self, "client", None)
            logger.info("closing the connection of %s: " + why, client, value)
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

    HeaderLimits.__name__ = HeaderLimits.__qualname__ = f"HeaderLimits{protocol_class.__name__}"
    return HeaderLimits


class EventStream(EventSourceResponse):
    """An SSE response whose sends give up after ``send_timeout`` seconds (a client that stops
    reading): the stream then ends with one INFO line rather than an error and a traceback.
    The event bus already drops a slow subscriber's oldest events, so memory stays bounded."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.info(
                "dropped the event stream %s: its client read nothing for %g s",
                scope.get("path"),
                self.send_timeout,
            )


def event_stream(request: Request, content: Any, **options: Any) -> EventStream:
    """``EventStream`` with the server's ``sse_send_timeout`` and a 15 s ping."""
    options.setdefault("ping", 15)
    send_timeout = request.app.state.settings.sse_send_timeout
    return EventStream(content, send_timeout=send_timeout, **options)
