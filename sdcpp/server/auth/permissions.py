"""Who may call what: the access levels a route declares, once, with the route itself
(``routing.Endpoint(path, handler, methods, access, ...)``), and the guard that enforces them.

    public  anyone, whatever ``--auth`` says (seed 004 "Public Endpoints")
    guest   anyone under ``--auth optional``, otherwise a signed-in user
    user    a signed-in user
    admin   an admin
    loopback  public to clients on this machine (loopback, the unix socket), admin otherwise

A rule may name a setting that chooses its level per server: ``/metrics`` follows
``--metrics-access`` (``loopback``, ``public`` or ``admin``).

``owned`` marks routes that act on one job (or key): the router answers 404 — not 403 — to
anyone but its owner and admins, so job ids can't be probed. Output downloads are public *and*
owned: they need the owner, an admin, or a signed capability URL (``capability.py``).

Every ``routing.Endpoint`` route arrives wrapped in its ``Guard``; ``guard_routes`` puts one
in front of any other route at ``create_app`` time: such a route declared no level, so it is
admin-only (fail closed) and logged, and a test insists that there is none. The checks run after the
auth middleware has put the identity in the scope.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .identity import ROLE_RANK, identity_of
from .unix import SCOPE_KEY as PEER_CREDENTIALS

logger = logging.getLogger(__name__)


class Access(enum.Enum):
    PUBLIC = "public"
    GUEST = "guest"
    USER = "user"
    ADMIN = "admin"
    LOOPBACK = "loopback"


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    owned: bool = False
    setting: str | None = None  # a Settings field holding this route's access level


PUBLIC, GUEST, USER, ADMIN, LOOPBACK = (Rule(a) for a in Access)
METRICS = Rule(Access.LOOPBACK, setting="metrics_access")
OWNED = Rule(Access.USER, owned=True)
CAPABILITY = Rule(Access.PUBLIC, owned=True)

_UNDECLARED = Rule(Access.ADMIN)


def _route_path(route: BaseRoute) -> str | None:
    if isinstance(route, Route | WebSocketRoute | Mount):
        return route.path
    return None


def access_of(
    path: str, method: str, declared: Mapping[tuple[str, str], Rule] | None = None
) -> dict[str, Any]:
    """The OpenAPI fields of an operation's rule: ``x-sdcpp-access``, ``x-sdcpp-owned`` and
    ``security`` (an empty list: no credentials needed). ``declared``: the (path, method)
    rules of the ``routing.Endpoint`` declarations (``routing.access_table``)."""
    rule = (declared or {}).get((path, method.upper())) or _UNDECLARED
    fields: dict[str, Any] = {"x-sdcpp-access": rule.access.value, "x-sdcpp-owned": rule.owned}
    if rule.access is Access.PUBLIC:
        fields["security"] = []
    else:
        fields["security"] = [{"bearer": []}, {"apiKey": []}]
    return fields


def allowed(access: Access, role: str, guests_allowed: bool, local: bool = False) -> bool:
    """``local``: the client is on this machine (for ``LOOPBACK``)."""
    if access is Access.PUBLIC or (access is Access.LOOPBACK and local):
        return True
    if access is Access.LOOPBACK:
        access = Access.ADMIN
    if access is Access.GUEST:
        return guests_allowed or ROLE_RANK[role] >= ROLE_RANK["user"]
    return ROLE_RANK[role] >= ROLE_RANK[access.value]


class Guard:
    """Wraps one route's app: refuses the request unless the identity meets its rule."""

    def __init__(self, app: ASGIApp, route_path: str, rules: dict[str, Rule] | None = None) -> None:
        self.app = app
        self.route_path = route_path
        self.rules = rules or {}  # {METHOD: rule} declared by a ``routing.Endpoint``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ..exceptions import AuthRequired, Forbidden, InvalidCredentials, ServerError

        scope["sdcpp.route"] = self.route_path  # the route template, for logs and metrics
        method = scope.get("method", "GET")
        rule = self.rules.get(method) or self.rules.get("GET") or _UNDECLARED
        identity = identity_of(scope)
        state = scope["app"].state
        auth = getattr(state, "auth", None)
        guests_allowed = bool(auth is not None and auth.guests_allowed)
        access = rule.access
        if rule.setting is not None and hasattr(state, "settings"):
            access = Access(getattr(state.settings, rule.setting))
        if not allowed(access, identity.role, guests_allowed, is_local(scope)):
            error = scope.get("auth_error")
            raise_or_close: ServerError
            if error is not None:
                raise_or_close = InvalidCredentials(error, _CHALLENGE)
            elif not identity.is_authenticated:
                raise_or_close = AuthRequired("authentication is required", _CHALLENGE)
            else:
                raise_or_close = Forbidden(f"this needs the {_role(access)} role")
            if scope["type"] == "websocket":
                # close before accept: the server answers the handshake with 403
                await send({"type": "websocket.close", "code": 1008})
                return
            raise raise_or_close
        await self.app(scope, receive, send)


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sdcpp"'}


def _role(access: Access) -> str:
    return "admin" if access is Access.LOOPBACK else access.value


def is_local(scope: Scope) -> bool:
    """The client is on this machine: a loopback address (after uvicorn's proxy-header
    handling, so a request a local proxy forwards counts as its real client), or the unix
    socket (no client address)."""
    if scope.get(PEER_CREDENTIALS) is not None:
        return True
    client = scope.get("client")
    if not client or not client[0]:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def guard_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Put a ``Guard`` in front of every route (in place; returns the same list)."""
    for route in routes:
        path = _route_path(route)
        if path is None or isinstance(getattr(route, "app", None), Guard):
            continue  # declared by a routing.Endpoint: already behind its own rule
        logger.warning("route %s declares no access rule: admins only", path)
        route.app = Guard(route.app, path)  # type: ignore[attr-defined]
    return routes
