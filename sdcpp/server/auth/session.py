"""The browser session cookie: how the web UI's EventSource, WebSocket and ``<img>`` requests
(which cannot carry an ``Authorization`` header) are signed in.

A login answers the JWT in its body as always; when it comes from the web UI (it carries
``X-Sdcpp-Client: webui``; other clients see no change) it also sets it as ``sdcpp_session``:
``HttpOnly`` (page scripts never see it), ``SameSite=Strict`` (no other site's page makes the
browser send it), ``Path=/``, ``Secure`` over https, for the token's lifetime. Logout revokes
the token and clears the cookie; refresh rotates both.

The cookie is the last resort of ``AuthService.resolve``: a request with ``Authorization`` or
``X-API-Key`` is judged by those alone. Against cross-site request forgery it counts only when

- the request is a read (GET, HEAD) or a WebSocket handshake, and any ``Origin`` it carries is
  this server's own (a WebSocket always carries one: no other page can open ``/ws`` as you); or
- it is any other method and carries ``X-Sdcpp-Client: webui`` — a header no cross-origin page
  can send without a CORS preflight this server refuses for origins not in ``--cors-origin`` —
  and, again, any ``Origin`` or ``Sec-Fetch-Site`` says same-origin.

Otherwise the cookie is ignored (the request is anonymous), never an error.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from typing import Any

COOKIE = "sdcpp_session"
CLIENT_HEADER = b"x-sdcpp-client"
CLIENT_VALUE = b"webui"
SAFE_METHODS = ("GET", "HEAD")


def cookie_token(headers: dict[bytes, bytes]) -> str | None:
    """The session cookie's value, if the request carries one."""
    raw = headers.get(b"cookie", b"").decode("latin-1")
    if COOKIE not in raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _same_origin(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    origin = headers.get(b"origin", b"").decode("latin-1")
    if headers.get(b"sec-fetch-site", b"same-origin") not in (b"same-origin", b"none"):
        return False
    if not origin:
        return True  # browsers send Origin on every cross-origin request that matters here
    host = headers.get(b"host", b"").decode("latin-1")
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return bool(host) and origin == f"{scheme}://{host}"


def cookie_allowed(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    """Whether the session cookie may sign this request in (the CSRF rules above)."""
    if not _same_origin(scope, headers):
        return False
    if scope.get("type") == "websocket":
        return bool(headers.get(b"origin"))
    if scope.get("method", "GET") in SAFE_METHODS:
        return True
    return headers.get(CLIENT_HEADER) == CLIENT_VALUE


def from_webui(headers: Any) -> bool:
    """Whether a request carries the web UI's header (a Starlette ``Headers``)."""
    return bool(headers.get(CLIENT_HEADER.decode()) == CLIENT_VALUE.decode())


def set_cookie(response: Any, token: str, max_age: int, secure: bool) -> None:
    response.set_cookie(
        COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure
    )


def clear_cookie(response: Any, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
