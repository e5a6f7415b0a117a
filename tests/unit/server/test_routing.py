"""Routes declared once (``routing.Endpoint``): routes, bodies and access derived from them."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from sdcpp.server.auth.permissions import ADMIN, PUBLIC, guard_routes
from sdcpp.server.routing import Endpoint, access_table, bodies, starlette_routes


class Body(BaseModel):
    x: int


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


ENDPOINTS = [
    Endpoint("/open", hello, access=PUBLIC),
    Endpoint("/post", hello, ("POST",), PUBLIC, body=Body),
    Endpoint("/closed", hello),  # no access declared: admins only
]


def test_derived_tables() -> None:
    assert bodies(ENDPOINTS) == {("POST", "/post"): Body}
    assert access_table(ENDPOINTS)[("/open", "GET")] is PUBLIC
    assert access_table(ENDPOINTS)[("/closed", "GET")] is ADMIN


def test_declared_rules_guard_the_routes() -> None:
    app = Starlette(routes=guard_routes(starlette_routes(ENDPOINTS)))
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/open").json() == {"ok": True}
    assert client.post("/post").status_code == 200
    assert client.get("/closed").status_code != 200  # an anonymous caller is refused
