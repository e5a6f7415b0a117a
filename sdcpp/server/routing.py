"""Each route declared once: ``Endpoint(path, handler, methods, access, body, name, guard)``.

A router (native resource module or dialect package ``sdcpp/server/dialects/<name>/``) exports

    ENDPOINTS: list[Endpoint] = [
        Endpoint("/v1/images/generations", generations, ("POST",), USER, body=ImagesRequest),
        Endpoint("/v1/models", models, access=GUEST),
    ]

and ``create_app`` includes the lists. Everything else is derived from these declarations, so
nothing is written twice:

- ``starlette_routes(endpoints)``: the routes the app serves, each behind its access guard;
- ``bodies(endpoints)``: the (method, path) -> request model map ``openapi.build_openapi`` reads;
- ``access_table(endpoints)``: (path, method) -> ``Rule`` for the permissions check and OpenAPI;
  ``declared_rules(app.routes)`` reads the same back from the served routes' guards.

Access levels are ``auth.permissions``'s (``PUBLIC``, ``GUEST``, ``USER``, ``ADMIN``, ``OWNED``,
``CAPABILITY``); a route that declares none is admin-only (fail closed), as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .auth.permissions import ADMIN, Guard, Rule


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: where, which handler, which methods, who may call it, what body it takes."""

    path: str
    handler: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)
    access: Rule = ADMIN
    body: type[BaseModel] | None = None
    name: str | None = None
    websocket: bool = False
    # the guard class: a dialect's own answers its refusals in the dialect's envelope
    guard: type[Guard] = Guard


def starlette_routes(endpoints: Iterable[Endpoint]) -> list[BaseRoute]:
    """The Starlette routes of ``endpoints``, each wrapped in the guard of its own rule."""
    routes: list[BaseRoute] = []
    for ep in endpoints:
        route: BaseRoute
        if ep.websocket:
            route = WebSocketRoute(ep.path, ep.handler, name=ep.name)
        else:
            route = Route(ep.path, ep.handler, methods=list(ep.methods), name=ep.name)
        route.app = ep.guard(route.app, ep.path, rules={m: ep.access for m in ep.methods})
        routes.append(route)
    return routes


def bodies(endpoints: Iterable[Endpoint]) -> dict[tuple[str, str], type[BaseModel]]:
    """(method, path) -> request body model, for the OpenAPI document."""
    return {(m, ep.path): ep.body for ep in endpoints if ep.body is not None for m in ep.methods}


def access_table(endpoints: Iterable[Endpoint]) -> dict[tuple[str, str], Rule]:
    """(path, method) -> access rule of every declared route."""
    return {(ep.path, m): ep.access for ep in endpoints for m in ep.methods}


def declared_rules(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], Rule]:
    """(path, method) -> rule of every served route that came from an ``Endpoint`` (the rules
    its guard holds), so OpenAPI documents exactly what the guard enforces."""
    found: dict[tuple[str, str], Rule] = {}
    for route in routes:
        guard = getattr(route, "app", None)
        if isinstance(guard, Guard) and isinstance(route, Route | WebSocketRoute):
            found.update({(route.path, m): rule for m, rule in guard.rules.items()})
    return found
