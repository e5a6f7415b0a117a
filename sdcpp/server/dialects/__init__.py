"""Foreign API dialects: each a package with schemas (request models ending in ``to_spec()``),
a router (HTTP only) and a renderer of the one error table in its own envelope."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


def enveloped(render: Callable[[Exception], Response]) -> Callable[[Handler], Handler]:
    """A decorator answering every failure of a dialect's handler with ``render(exc)``."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)  # the route's name and summary stay the handler's
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return render(exc)

        return wrapped

    return decorate
