"""Browser attacks on a server without a login: DNS rebinding (the Host check) and cross-site
requests (``CrossSiteMiddleware``, below).

A page on ``http://evil.example:8080`` whose name the attacker re-points at 127.0.0.1 is, to
the browser, same-origin with itself: its scripts can read our answers, with no CORS check in
the way. Its requests still say ``Host: evil.example``, though, so a server that only answers
to names it knows is out of reach.

The policy (``allowed_hosts``):

- empty (the default): a server bound to a loopback address answers requests that arrived on
  a loopback socket only for loopback names (``localhost``, ``*.localhost``, ``127.x.x.x``,
  ``[::1]``); a server bound elsewhere (``--host 0.0.0.0``) cannot know its public names, so
  it checks nothing unless told them;
- a list (``--allowed-host``, ``SDCPP_ALLOWED_HOSTS=a.example,*.lan``): every TCP request
  must name one of them or a loopback name; ``*.lan`` matches any name below ``lan``;
- ``*``: no check.

Unix-socket requests are never checked (no browser can reach one). A refused request gets
400 ``INVALID_HOST`` in the native envelope; a refused WebSocket is closed before the
handshake (403).
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import envelope
from .settings import Settings

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def host_name(header: str) -> str:
    """The name in a Host header: no port, no brackets around IPv6, lower case, no final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def matches(name: str, pattern: str) -> bool:
    pattern = pattern.strip().lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


class TrustedHostMiddleware:
    """Refuses requests whose Host header this server does not answer to (see module doc)."""

    def __init__(self, app: ASGIApp, bind_host: str, allowed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.allowed = tuple(a for a in allowed if a.strip())
        self.any = "*" in self.allowed
        self.loopback_bound = is_loopback(host_name(bind_host))

    def _checked(self, scope: Scope) -> bool:
        """Whether this request's Host must pass: TCP only; loopback sockets by default."""
        server = scope.get("server")
        if self.any or not server or server[1] is None:  # unix socket: uvicorn gives None
            return False
        if self.allowed:
            return True
        return self.loopback_bound and is_loopback(str(server[0]))

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return is_loopback(name) or any(matches(name, pattern) for pattern in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._checked(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        if not header or self.allows(header):  # no Host (HTTP/1.0 tools): no browser
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (
            f"this server does not answer to the host name {host_name(header)[:100]!r} "
            "(allow it with --allowed-host)"
        )
        response = JSONResponse(
            envelope(Request(scope), 400, "INVALID_HOST", message), status_code=400
        )
        await response(scope, receive, send)


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin_netloc(origin: str) -> tuple[str, str]:
    """(scheme, host[:port]) of an Origin header, lower case, default ports dropped."""
    scheme, _, rest = origin.strip().lower().partition("://")
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return scheme, rest.removesuffix(default) if default else rest


class CrossSiteMiddleware:
    """Refuses state-changing requests and WebSockets that a browser sent from another site.

    A page on any site can POST to ``http://127.0.0.1:8080`` without a CORS preflight when
    the body looks like a form (``text/plain``, urlencoded, multipart), and open a WebSocket
    to it: CORS only stops it from reading the answer. With ``--auth none`` on loopback, the
    default, that let any web page queue jobs, clear the queue or restart the worker, and read
    every job's events. Browsers name the page's origin in ``Origin`` on such requests, so one
    is refused (403 ``CROSS_SITE_REQUEST``) unless it is this server's own origin (the web UI)
    or listed in ``cors_origins`` (``*`` lists all). Requests without ``Origin`` (curl, SDKs)
    pass. With authentication on, nothing to do here: a cross-site request carries no
    credentials a browser adds by itself but the UI's cookie, which needs the same origin
    already (auth/session.py), so it is anonymous and refused as such.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.off = settings.auth_methods != ("none",)
        self.any = "*" in settings.cors_origins
        self.listed = {_origin_netloc(o) for o in settings.cors_origins}

    def allows(self, origin: str, host: str) -> bool:
        scheme, netloc = _origin_netloc(origin)
        if self.any or (scheme, netloc) in self.listed:
            return True
        own = host.strip().lower()
        return bool(own) and netloc in (own, own.removesuffix({"https": ":443"}.get(scheme, ":80")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        unsafe = not self.off and (
            kind == "websocket" or (kind == "http" and scope.get("method") in UNSAFE_METHODS)
        )
        headers = dict(scope.get("headers", [])) if unsafe else {}
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin or self.allows(origin, headers.get(b"host", b"").decode("latin-1")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (
            f"a cross-site request from {origin[:100]!r} cannot change anything here "
            "(list the site with --cors-origin to allow it)"
        )
        response = JSONResponse(
            envelope(Request(scope), 403, "CROSS_SITE_REQUEST", message), status_code=403
        )
        await response(scope, receive, send)
