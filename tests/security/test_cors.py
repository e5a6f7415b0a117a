"""CORS and cross-site requests: unlisted origins get no CORS grant, listed ones do, and
without a login (``--auth none``, the loopback default) no other site's page can change
anything with a "simple" request (a form or ``text/plain`` POST needs no preflight) on any
state-changing route of any dialect, nor open the event WebSocket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attack import assert_error, data_dir, jobs_in
from fake_engine import FakeEngine
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sdcpp.server import Settings, create_app

LISTED = "https://studio.example"
JOB = b'{"prompt": "x", "steps": 1, "width": 64, "height": 64}'
SIMPLE_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]


def make(tmp_path: Path, **settings: Any) -> TestClient:
    config = Settings(data_dir=data_dir(tmp_path), shutdown_grace=0.5, **settings)
    return TestClient(create_app(config, engine=FakeEngine()))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make(tmp_path, cors_origins=(LISTED,)) as c:
        yield c


def unsafe_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every state-changing HTTP route, path parameters filled in."""
    found = []
    for route in client.app.routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        found += [
            (m, path)
            for m in sorted(route.methods or ())
            if m in ("POST", "PUT", "PATCH", "DELETE")
        ]
    return found


def test_unlisted_origins_get_no_cors_grant(client: TestClient) -> None:
    evil = {"Origin": "https://evil.example"}
    r = client.get("/api/status", headers=evil)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = client.options(
        "/api/generate/text2img",
        headers={**evil, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_a_listed_origin_is_granted_and_may_post(client: TestClient) -> None:
    preflight = {
        "Origin": LISTED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    r = client.options("/api/generate/text2img", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == LISTED
    r = client.post("/api/generate/text2img", content=JOB, headers={"Origin": LISTED})
    assert r.status_code == 202 and r.headers["access-control-allow-origin"] == LISTED


def test_a_wildcard_never_grants_credentials(tmp_path: Path) -> None:
    with make(tmp_path, cors_origins=("*",)) as c:
        r = c.get("/api/status", headers={"Origin": "https://any.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers


def test_no_simple_request_from_another_site_changes_anything(client: TestClient) -> None:
    routes = unsafe_routes(client)
    assert len(routes) > 40, "the app lost its state-changing routes"
    store = client.app.state.jobs.store
    for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
        for method, path in routes:
            for ctype in SIMPLE_TYPES[:1] if method != "POST" else SIMPLE_TYPES:
                r = client.request(
                    method, path, content=JOB, headers={"Origin": origin, "Content-Type": ctype}
                )
                try:
                    error = assert_error(r, 403, "CROSS_SITE_REQUEST")
                except AssertionError as exc:
                    raise AssertionError(f"{method} {path} from {origin}: {exc}") from None
                assert "--cors-origin" in error["message"]
    assert jobs_in(client.app) == 0 and store.list(limit=1) == []


def test_the_same_origin_and_clients_without_origin_are_served(client: TestClient) -> None:
    for headers in ({"Origin": "http://testserver"}, {"Origin": "http://TestServer:80"}, {}):
        r = client.post("/api/generate/text2img", content=JOB, headers=headers)
        assert r.status_code == 202, (headers, r.text)
    assert jobs_in(client.app) == 3


def test_a_cross_site_websocket_is_refused(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"Origin": "https://evil.example"}) as ws,
    ):
        ws.receive_json()
    with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "system_update"


def test_with_a_login_the_session_rules_apply_instead(tmp_path: Path) -> None:
    # auth on: a cross-site request carries no credentials, so it is anonymous (401)
    with make(tmp_path, auth=("jwt",)) as c:
        r = c.post("/api/generate/text2img", content=JOB, headers={"Origin": "https://e.example"})
        assert_error(r, 401, "AUTH_REQUIRED")
        assert jobs_in(c.app) == 0
