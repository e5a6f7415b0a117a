"""The auth middleware (pure ASGI): resolves the request's identity into the scope.

It never refuses a request itself. It sets ``scope["user"]`` (an ``Identity``; Starlette's
``request.user``) and, when offered credentials were refused, ``scope["auth_error"]`` with a
reason that is safe to show; each route's ``Guard`` (``permissions.py``) then decides. So a
public route still answers a client holding a stale token, and a protected one says why not.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .identity import GUEST


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            auth = getattr(scope["app"].state, "auth", None)
            if auth is None:  # outside the lifespan: nobody is anybody
                scope["user"] = GUEST
            else:
                resolved = auth.resolve(scope)
                if resolved.pam is not None:  # a Basic pair for PAM: checked off the loop
                    resolved = await auth.finish_basic(resolved.pam)
                scope["user"] = resolved.identity or GUEST
                if resolved.error is not None:
                    scope["auth_error"] = resolved.error
        await self.app(scope, receive, send)
