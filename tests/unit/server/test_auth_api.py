"""Auth through the app (fake engine): logins, tokens, keys, ownership, lockout, no leaks."""

from __future__ import annotations

import logging
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app
from sdcpp.server.auth import accounts
from sdcpp.server.auth import store as auth_store
from sdcpp.server.auth.unix import SCOPE_KEY, PeerCredentials

PASSWORD = "correct horse battery"
JOB = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64}


def _settings(tmp_path: Path, auth: str, **kw: Any) -> Settings:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    return Settings(
        data_dir=tmp_path / "data", shutdown_grace=0.5, auth=tuple(auth.split(",")), **kw
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(tmp_path, "jwt,api-key", login_max_failures=3)
    with auth_store.open_auth_store(settings) as store:  # as `sdcpp users add`, before
        accounts.add_user(store, "alice", "user", PASSWORD)
        accounts.add_user(store, "bob", "user", PASSWORD)
        accounts.add_user(store, "root", "admin", PASSWORD)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def wait_done(client: TestClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def code(r: Any) -> str:
    return str(r.json()["error"]["code"])


def test_login_shapes_and_aliases(client: TestClient) -> None:
    r = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    body = r.json()
    assert r.status_code == 200 and body["message"] == "Login successful"
    assert body["user"]["username"] == "alice" and body["user"]["role"] == "user"
    assert (
        "generate" in body["user"]["permissions"]
        and "manage_models" not in body["user"]["permissions"]
    )
    h = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/auth/validate", headers=h).json()["valid"] is True
    assert client.get("/api/auth/me", headers=h).json()["user"]["id"] == body["user"]["id"]
    assert client.get("/api/v1/auth/profile", headers=h).json()["user"]["username"] == "alice"
    r = client.get("/api/auth/me")
    assert r.status_code == 401 and code(r) == "AUTH_REQUIRED"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    a = client.post("/api/auth/login", json={"username": "alice", "password": "wrong password"})
    b = client.post("/api/auth/login", json={"username": "nobody", "password": "wrong password"})
    assert a.status_code == b.status_code == 401
    assert a.json()["error"]["message"] == b.json()["error"]["message"]
    assert code(a) == "INVALID_CREDENTIALS"


def test_lockout_after_failures_even_for_the_right_password(client: TestClient) -> None:
    for _ in range(3):
        client.post("/api/auth/login", json={"username": "bob", "password": "nope nope"})
    r = client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 429 and code(r) == "RATE_LIMITED"
    assert 0 < int(r.headers["Retry-After"]) <= 900
    assert (
        client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).status_code
        == 200
    )  # another user is not locked


def test_logout_revokes_and_refresh_rotates(client: TestClient) -> None:
    h = login(client, "alice")
    r = client.post("/api/auth/refresh", headers=h)
    assert r.status_code == 200 and r.json()["message"] == "Token refreshed successfully"
    new = {"Authorization": f"Bearer {r.json()['token']}"}
    old = client.get("/api/auth/me", headers=h)
    assert old.status_code == 401 and code(old) == "INVALID_CREDENTIALS"
    assert client.get("/api/auth/me", headers=new).status_code == 200
    assert client.post("/api/auth/logout", headers=new).json()["message"] == "Logout successful"
    assert client.get("/api/auth/me", headers=new).status_code == 401
    assert client.get("/api/health", headers=new).status_code == 200  # public stays public


def test_demotion_disable_delete_and_password_change_act_at_once(client: TestClient) -> None:
    admin = login(client, "root")
    alice = login(client, "alice")
    assert (
        client.patch("/api/users/alice", json={"role": "admin"}, headers=admin).status_code == 200
    )
    assert client.get("/api/users", headers=alice).status_code == 200  # promoted, same token
    client.patch("/api/users/alice", json={"role": "user"}, headers=admin)
    r = client.get("/api/users", headers=alice)
    assert r.status_code == 403 and code(r) == "INSUFFICIENT_PERMISSIONS"
    client.patch("/api/users/alice", json={"active": False}, headers=admin)
    assert client.get("/api/auth/me", headers=alice).status_code == 401
    client.patch("/api/users/alice", json={"active": True}, headers=admin)
    assert client.get("/api/auth/me", headers=alice).status_code == 200
    time.sleep(1.01)  # tokens carry whole seconds: the change must be in a later second
    client.patch("/api/users/alice", json={"password": "another password"}, headers=admin)
    assert client.get("/api/auth/me", headers=alice).status_code == 401
    alice = login(client, "alice", "another password")
    assert client.delete("/api/users/alice", headers=admin).status_code == 200
    assert client.get("/api/auth/me", headers=alice).status_code == 401
    r = client.delete("/api/users/root", headers=admin)
    assert r.status_code == 409  # an admin can't lock themselves out


def test_api_key_lifecycle(client: TestClient) -> None:
    alice = login(client, "alice")
    r = client.post("/api/keys", json={"name": "laptop"}, headers=alice)
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    listed = client.get("/api/keys", headers=alice).json()["keys"]
    assert [k["name"] for k in listed] == ["laptop"] and "key" not in listed[0]
    assert listed[0]["last_used_at"] is None
    for h in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = client.get("/api/auth/me", headers=h)
        assert me.status_code == 200 and me.json()["user"]["username"] == "alice"
    assert client.get("/api/keys", headers=alice).json()["keys"][0]["last_used_at"] is not None
    r = client.get(f"/api/auth/me?api_key={key}")  # never from the query string
    assert r.status_code == 401 and code(r) == "AUTH_REQUIRED"
    bob = login(client, "bob")
    assert client.delete(f"/api/keys/{key_id}", headers=bob).status_code == 404
    r = client.post("/api/keys", json={"user": "alice"}, headers=bob)
    assert r.status_code == 403
    assert client.delete(f"/api/keys/{key_id}", headers=alice).status_code == 200
    r = client.get("/api/auth/me", headers={"X-API-Key": key})
    assert r.status_code == 401 and code(r) == "INVALID_CREDENTIALS"
    r = client.get("/api/auth/me", headers={"X-API-Key": key[:-1] + "x"})
    assert r.status_code == 401


def test_jobs_are_private_and_outputs_are_capability_urls(client: TestClient) -> None:
    alice, bob, admin = login(client, "alice"), login(client, "bob"), login(client, "root")
    job_id = client.post("/api/generate/text2img", json=JOB, headers=alice).json()["job_id"]
    job = wait_done(client, job_id, alice)
    (url,) = job["outputs"]
    assert "sig=" in url and "exp=" in url
    assert client.get(url).status_code == 200  # an <img> tag, no credentials
    plain = url.split("?")[0]
    assert client.get(plain).status_code == 404
    assert client.get(plain, headers=bob).status_code == 404
    assert client.get(plain, headers=alice).status_code == 200
    assert client.get(url.replace("image_0", "image_1")).status_code == 404
    thumb = url.replace("/api/queue/job/", "/api/v1/jobs/") + "&thumb=1&size=50"
    assert client.get(thumb).status_code == 200
    r = client.get(f"/api/queue/job/{job_id}", headers=bob)
    assert r.status_code == 404 and code(r) == "JOB_NOT_FOUND"
    assert client.get(f"/api/queue/job/{job_id}", headers=admin).status_code == 200
    assert client.post("/api/queue/cancel", json={"job_id": job_id}, headers=bob).status_code == 404
    mine = client.get("/api/queue/status", headers=bob).json()["queue"]["jobs"]
    assert mine == []
    everyone = client.get("/api/queue/status", headers=admin).json()["queue"]["jobs"]
    assert [j["id"] for j in everyone] == [job_id]
    assert client.delete(f"/api/queue/job/{job_id}", headers=bob).status_code == 404
    assert client.delete(f"/api/queue/job/{job_id}", headers=alice).status_code == 200


def test_websocket_events_reach_only_the_owner(client: TestClient) -> None:
    alice, bob = login(client, "alice"), login(client, "bob")
    with client.websocket_connect("/ws", headers=bob) as ws:
        assert ws.receive_json()["type"] == "system_update"
        theirs = client.post("/api/generate/text2img", json=JOB, headers=alice).json()["job_id"]
        wait_done(client, theirs, alice)
        mine = client.post("/api/generate/text2img", json=JOB, headers=bob).json()["job_id"]
        seen: list[dict[str, Any]] = []
        while not any(
            m["type"] == "job_update" and m["data"]["status"] == "completed" for m in seen
        ):
            seen.append(ws.receive_json())
    jobs = {m["data"]["job_id"] for m in seen if m["type"] == "job_update"}
    assert jobs == {mine} and all("owner" not in m for m in seen)


def test_no_secret_in_logs_or_error_bodies(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = login(client, "alice")["Authorization"].split()[1]
    key = client.post(
        "/api/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {token}"}
    ).json()["key"]
    bodies = [
        client.post("/api/auth/login", json={"username": "alice", "password": "s3cret-guess"}),
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}x"}),
        client.get("/api/auth/me", headers={"X-API-Key": key + "x"}),
        client.get("/api/auth/me", headers={"Authorization": f"Basic {token}"}),
        client.post("/api/auth/login", json={"username": "alice", "password": 5}),
    ]
    leaked = [s for s in (token, key, "s3cret-guess", PASSWORD) for b in bodies if s in b.text]
    assert leaked == []
    assert all(b.status_code in (400, 401, 422) for b in bodies)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in (token, key, "s3cret-guess", PASSWORD, key[-20:]) if s in logged]


def test_admin_endpoints_manage_users(client: TestClient) -> None:
    admin = login(client, "root")
    r = client.post(
        "/api/users",
        json={"username": "carol", "password": PASSWORD, "role": "user"},
        headers=admin,
    )
    assert r.status_code == 201 and "password_hash" not in r.text
    assert client.post("/api/users", json={"username": "carol"}, headers=admin).status_code == 409
    names = [u["username"] for u in client.get("/api/users", headers=admin).json()["users"]]
    assert names == ["alice", "bob", "carol", "root"]
    login(client, "carol")
    r = client.post("/api/users", json={"username": "x", "password": "short"}, headers=admin)
    assert r.status_code == 400


def test_optional_mode_lets_guests_read_only(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, "optional"), engine=FakeEngine())) as c:
        assert c.get("/api/models").status_code == 200
        assert c.get("/api/samplers").status_code == 200
        r = c.post("/api/generate/text2img", json=JOB)
        assert r.status_code == 401 and code(r) == "AUTH_REQUIRED"
        assert c.get("/api/auth/me").status_code == 401


def test_none_mode_is_open_and_keeps_plain_urls(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, "none"), engine=FakeEngine())) as c:
        me = c.get("/api/auth/me").json()["user"]
        assert me["role"] == "admin" and me["username"] == "anonymous"
        assert c.post("/api/auth/login", json={"username": "a", "password": "b"}).status_code == 400
        job_id = c.post("/api/generate/text2img", json=JOB).json()["job_id"]
        job = wait_done(c, job_id, {})
        assert job["outputs"] == [f"/api/queue/job/{job_id}/output/image_0.png"]
    assert not (tmp_path / "data" / "secret.key").exists()  # none writes no secret


async def _asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]], creds: Any) -> Any:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"sock"), *headers],
        "client": None,
        "server": ("/tmp/x.sock", None),
    }
    if creds is not None:
        scope[SCOPE_KEY] = creds
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out


def test_unix_peer_identity_and_spoofing(tmp_path: Path) -> None:
    """The peer's uid decides (the socket itself is tested for real in tests/e2e)."""
    settings = _settings(tmp_path, "unix")
    nobody = pwd.getpwnam("nobody")
    as_nobody = PeerCredentials(os.getpid(), nobody.pw_uid, nobody.pw_gid)
    as_root = PeerCredentials(os.getpid(), 0, 0)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        app = c.app

        def me(creds: Any, *headers: tuple[bytes, bytes]) -> Any:
            return c.portal.call(_asgi, app, "/api/auth/me", list(headers), creds)  # type: ignore[union-attr]

        out = me(as_nobody)
        assert out["status"] == 200 and b'"username":"nobody"' in out["body"]
        assert b'"role":"user"' in out["body"]
        spoof = me(as_nobody, (b"x-unix-user", b"root"))
        assert spoof["status"] == 401 and b"INVALID_CREDENTIALS" in spoof["body"]
        assert me(as_nobody, (b"x-unix-user", b"nobody"))["status"] == 200
        out = me(as_root, (b"x-unix-user", b"nobody"))  # root (a proxy) may speak for others
        assert out["status"] == 200 and b'"username":"nobody"' in out["body"]
        assert b'"role":"admin"' in me(as_root)["body"]
        # over TCP (no peer credentials) the header means nothing
        tcp = c.get("/api/auth/me", headers={"X-Unix-User": "root"})
        assert tcp.status_code == 401 and code(tcp) == "AUTH_REQUIRED"
