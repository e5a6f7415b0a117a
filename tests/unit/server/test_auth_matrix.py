"""The authorization matrix: every operation of the OpenAPI document x (anonymous, user, other
user, admin), the expected outcome derived from the access rule the route declares.

Requests go through a small ASGI driver instead of TestClient so that streaming endpoints
(SSE) answer their status and then see the client leave.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asgi_call import call as _call
from fake_engine import FakeEngine
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app
from sdcpp.server.auth import accounts
from sdcpp.server.auth.store import AuthStore

DENIED = {"AUTH_REQUIRED", "INVALID_CREDENTIALS", "INSUFFICIENT_PERMISSIONS"}
DENIED |= {"invalid_api_key", "insufficient_permissions"}  # the OpenAI dialect's refusals
ROLES = ("anonymous", "user", "other", "admin")


@dataclass
class World:
    client: TestClient
    store: AuthStore
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]
    done_job: str
    guests: bool
    mode: str
    counter: int = 0


def _setup(tmp_path: Path, mode: str) -> Iterator[World]:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(
        data_dir=tmp_path / "data", max_queue=1000, shutdown_grace=0.5, auth=tuple(mode.split(","))
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        auth = client.app.state.auth  # type: ignore[attr-defined]
        headers: dict[str, dict[str, str]] = {"anonymous": {}}
        ids: dict[str, str] = {}
        if auth.enabled:
            store = auth.store
            for name, role in (("user", "user"), ("other", "user"), ("admin", "admin")):
                user = store.add_user(name, role=role)
                ids[name] = user.id
                if name == "other":  # this one signs in with an API key, the others with JWTs
                    key, _ = accounts.create_key(store, name, "matrix")
                    headers[name] = {"X-API-Key": key}
        else:
            store = None
        world = World(client, store, headers, ids, "", auth.guests_allowed, mode)  # type: ignore[arg-type]
        user = _headers(world, "user")
        r = client.post("/api/generate/text2img", json={"prompt": "x", "steps": 1}, headers=user)
        world.done_job = r.json()["job_id"]
        _wait(client, world.done_job, user)
        yield world


def _wait(client: TestClient, job_id: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 10
    while client.get(f"/api/queue/job/{job_id}", headers=headers).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _headers(world: World, role: str) -> dict[str, str]:
    """A fresh token per request for JWT roles: logout and refresh revoke the one they get."""
    if role in ("user", "admin") and world.store is not None:
        auth = world.client.app.state.auth  # type: ignore[attr-defined]
        token, _ = auth.issue_token(world.store.user_by_id(world.ids[role]))
        return {"Authorization": f"Bearer {token}"}
    return world.headers.get(role, {})


def _fresh(world: World, param: str, as_role: str) -> str:
    """A value for a path parameter; things a request may destroy are made anew each time."""
    world.counter += 1
    store = world.client.app.state.jobs.store  # type: ignore[attr-defined]
    if param == "job_id":
        owner = world.ids.get("user")
        return str(store.create("txt2img", {"prompt": "__slow__"}, owner=owner).id)
    if param == "filename":
        return "image_0.png"
    if param == "model_id":
        return "tiny"
    if param in ("username", "key_id") and world.store is None:
        return "nobody"  # --auth none has no accounts: these answer 400
    if param == "username":
        name = f"victim{world.counter}"
        world.store.add_user(name)
        return name
    if param == "key_id":
        _, record = accounts.create_key(world.store, "user", f"k{world.counter}")
        return record.id
    if param == "kind":
        return "nope"
    if param == "rest":  # the OpenAI dialect's CORS preflight catch-all: /v1/{rest:path}
        return "images/generations"
    if param == "id":  # /v1/models/{id}
        return "tiny"
    if param == "path":  # the web UI's files: /ui/{hash}/{file}
        return "0/css/app.css"
    if param == "preset_id":  # DELETE /api/presets/{preset_id}: one of the caller's own
        return "own/none.json"
    raise AssertionError(f"the matrix does not know path parameter {param!r}")


def _expected(access: str, owned: bool, role: str, guests: bool) -> str:
    """'denied-401', 'denied-403', 'hidden' (404) or 'allowed'."""
    if access == "loopback":  # /metrics: the matrix calls from 127.0.0.1
        access = "public"
    if access == "public":
        return "hidden" if owned and role in ("anonymous", "other") else "allowed"
    if role == "anonymous" and not (access == "guest" and guests):
        return "denied-401"
    if access == "admin" and role != "admin":
        return "denied-403"
    if owned and role == "other":
        return "hidden"
    return "allowed"


def _operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    spec = world.client.get("/openapi.json").json()
    return [(path, m.upper(), op) for path, ops in spec["paths"].items() for m, op in ops.items()]


MODES = ["jwt,api-key", "optional,jwt,api-key", "none"]


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    yield from _setup(tmp_path, request.param)


def test_authorization_matrix(world: World) -> None:
    operations = _operations(world)
    assert len(operations) > 50  # the whole API, not a sample
    roles = ROLES if world.store is not None else ("anonymous",)
    failures = []
    for path, method, op in operations:
        access, owned = op["x-sdcpp-access"], op["x-sdcpp-owned"]
        for role in roles:
            expected = _expected(access, owned, role, world.guests)
            if world.store is None:
                expected = "allowed"  # --auth none: everything, as before auth existed
            params = re.findall(r"\{(\w+)\}", path)
            url = path
            for p in params:
                value = world.done_job if p == "job_id" and "output" in path else None
                url = url.replace("{" + p + "}", value or _fresh(world, p, role))
            body = None
            if method in ("POST", "PATCH", "PUT"):
                body = {}
                if owned and "job_id" not in params:  # the job is named in the body
                    body = {"job_id": _fresh(world, "job_id", role)}
            headers = _headers(world, role)
            if path == "/ws":
                got = _websocket(world.client, headers)
                status, code = (200, None) if got else (403, "INSUFFICIENT_PERMISSIONS")
                if not got:
                    code = "AUTH_REQUIRED" if role == "anonymous" else "INSUFFICIENT_PERMISSIONS"
            else:
                status, data = _call(world.client, method, url, headers, body)
                error = data.get("error") if isinstance(data, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                if error == "HTTPException" and status in (401, 403):  # the A1111 dialect's
                    code = "AUTH_REQUIRED" if status == 401 else "INSUFFICIENT_PERMISSIONS"
            outcome = _outcome(status, code)
            if outcome != expected and not (path == "/ws" and expected.startswith("denied")):
                failures.append(f"{method} {path} as {role}: {status} {code}, want {expected}")
            elif path == "/ws" and expected.startswith("denied") != outcome.startswith("denied"):
                failures.append(f"WS {path} as {role}: {outcome}, want {expected}")
    assert not failures, "\n".join(failures)


def _outcome(status: int, code: str | None) -> str:
    if code in DENIED:
        return f"denied-{status}"
    if status == 404 and code in ("JOB_NOT_FOUND", "KEY_NOT_FOUND"):
        return "hidden"
    if status == 404 and code is None:  # a dialect's own envelope (seed 001's has no code)
        return "hidden"
    return "allowed"


def _websocket(client: TestClient, headers: dict[str, str]) -> bool:
    try:
        with client.websocket_connect("/ws", headers=headers) as ws:
            return bool(ws.receive_json()["type"] == "system_update")
    except WebSocketDisconnect as exc:
        assert exc.code == 1008
        return False


def test_every_route_declares_its_access(world: World) -> None:
    from starlette.routing import Route, WebSocketRoute

    from sdcpp.server.routing import declared_rules

    routes = world.client.app.routes  # type: ignore[attr-defined]
    paths = {r.path for r in routes if isinstance(r, Route | WebSocketRoute)}
    declared = {path for path, _ in declared_rules(routes)}  # routing.Endpoint declarations
    assert "/api/generate/text2img" in declared and "/metrics" in declared
    assert paths - declared == set(), "routes not declared as a routing.Endpoint"
