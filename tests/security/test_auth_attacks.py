"""Auth under attack: forged, expired, tampered and alg-confused JWTs, revoked tokens and API
keys, key guessing, brute force (per name and per address, and not evaded by a spoofed
X-Forwarded-For over TCP), identity headers over TCP. Every refusal is 401/429 in the native
envelope and changes nothing: no user, key or job appears."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from attack import Served, assert_error, data_dir, jobs_in
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp.server import Settings, create_app
from sdcpp.server.auth import accounts
from sdcpp.server.auth.secret import derive_key, load_or_create_secret

PASSWORD = "correct horse battery"
JOB = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
NEW_USER = {"username": "mallory", "password": "mallory-password", "role": "admin"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=data_dir(tmp_path), shutdown_grace=0.5, auth=("jwt", "api-key"), token_leeway=0
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        accounts.add_user(c.app.state.auth.store, "root", "admin", PASSWORD)
        accounts.add_user(c.app.state.auth.store, "alice", "user", PASSWORD)
        yield c


def login(client: Any, name: str = "root") -> str:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def real_key(client: TestClient) -> bytes:
    return derive_key(load_or_create_secret(client.app.state.settings.data_dir), "jwt")


def claims(client: TestClient, **changes: Any) -> dict[str, Any]:
    root = client.app.state.auth.store.user_by_name("root")
    now = int(time.time())
    base = {"iss": "sdcpp", "sub": root.id, "jti": "j1", "iat": now, "nbf": now, "exp": now + 600}
    return {**base, "username": "root", **changes}


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(payload)}."


def attempts_change_nothing(client: TestClient, headers: dict[str, str]) -> None:
    """The same credentials on a read, a job and an admin write: 401 each, nothing written."""
    store = client.app.state.auth.store
    users, keys = len(store.users()), len(store.keys())
    for method, path, body in [
        ("GET", "/api/users", None),
        ("POST", "/api/generate/text2img", JOB),
        ("POST", "/api/users", NEW_USER),
        ("POST", "/api/keys", {"name": "stolen"}),
    ]:
        r = client.request(method, path, json=body, headers=headers)
        assert_error(r, 401, "INVALID_CREDENTIALS")
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
    assert jobs_in(client.app) == 0
    assert (len(store.users()), len(store.keys())) == (users, keys)


def forged_tokens(client: TestClient) -> dict[str, str]:
    key = real_key(client)
    good = login(client)
    head, body, sig = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    alice = client.app.state.auth.store.user_by_name("alice")
    payload["sub"] = alice.id  # root's signature over alice's id
    swapped = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return {
        "alg none": unsigned(claims(client)),
        "alg None": unsigned(claims(client), "None"),
        "wrong key": jwt.encode(claims(client), b"k" * 32, algorithm="HS256"),
        "HS512 with the real key": jwt.encode(claims(client), key, algorithm="HS512"),
        "expired": jwt.encode(claims(client, exp=int(time.time()) - 5), key, algorithm="HS256"),
        "not yet valid": jwt.encode(claims(client, nbf=int(time.time()) + 600), key, "HS256"),
        "no exp": jwt.encode({k: v for k, v in claims(client).items() if k != "exp"}, key),
        "other issuer": jwt.encode(claims(client, iss="evil"), key, algorithm="HS256"),
        "unknown user": jwt.encode(claims(client, sub="no-such-id"), key, algorithm="HS256"),
        "tampered payload": f"{head}.{swapped}.{sig}",
        "signature cut": f"{head}.{body}.",
        "garbage": "a.b.c",
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512, 32 B
def test_forged_tokens_are_refused_and_change_nothing(client: TestClient) -> None:
    for name, token in forged_tokens(client).items():
        try:
            attempts_change_nothing(client, bearer(token))
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_a_valid_forgery_with_the_real_key_works(client: TestClient) -> None:
    # the control: the forgeries above fail for what they change, not for their form
    token = jwt.encode(claims(client), real_key(client), algorithm="HS256")
    assert client.get("/api/users", headers=bearer(token)).status_code == 200


def test_revoked_and_demoted_credentials_stop_at_once(client: TestClient) -> None:
    token = login(client)
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 200
    attempts_change_nothing(client, bearer(token))

    key = client.post("/api/keys", json={"name": "ci"}, headers=bearer(login(client))).json()
    assert client.get("/api/users", headers={"X-API-Key": key["key"]}).status_code == 200
    r = client.delete(f"/api/keys/{key['id']}", headers=bearer(login(client)))
    assert r.status_code in (200, 204), r.text
    attempts_change_nothing(client, {"X-API-Key": key["key"]})
    attempts_change_nothing(client, bearer(key["key"]))


def test_guessed_and_altered_api_keys_are_refused(client: TestClient) -> None:
    key = client.post("/api/keys", json={"name": "ci"}, headers=bearer(login(client))).json()
    real: str = key["key"]
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    for guess in [flipped, real[:-4], real + "x", real.split("_")[0] + "_" + key["prefix"], ""]:
        if guess:
            attempts_change_nothing(client, {"X-API-Key": guess})
    assert "key" not in client.get("/api/keys", headers=bearer(login(client))).json()["keys"][0]


def test_brute_force_locks_the_name_then_the_address(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=data_dir(tmp_path),
        shutdown_grace=0.5,
        auth=("jwt",),
        login_max_failures=3,
        login_max_failures_ip=5,
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        accounts.add_user(c.app.state.auth.store, "root", "admin", PASSWORD)
        for _ in range(3):
            r = c.post("/api/auth/login", json={"username": "root", "password": "guess"})
            assert_error(r, 401, "INVALID_CREDENTIALS")
        r = c.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
        assert_error(r, 429, "RATE_LIMITED")  # even the right password, while locked
        assert int(r.headers["retry-after"]) > 0
        for name in ("a", "b"):  # other names from the same address: the address locks too
            c.post("/api/auth/login", json={"username": name, "password": "guess"})
        r = c.post("/api/auth/login", json={"username": "c", "password": "guess"})
        assert_error(r, 429, "RATE_LIMITED")


def raw_request(port: int, request: str, source: str = "127.0.0.2") -> tuple[int, dict[str, Any]]:
    """One HTTP/1.1 request from ``source`` (not uvicorn's trusted proxy 127.0.0.1)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def test_spoofed_headers_over_tcp_grant_nothing(serve: Callable[..., Served]) -> None:
    served = serve(auth=("jwt",), login_max_failures=100, login_max_failures_ip=3)
    accounts.add_user(served.app.state.auth.store, "root", "admin", PASSWORD)
    login_body = json.dumps({"username": "x", "password": "guess"})

    def attempt(forwarded: str) -> int:
        status, _ = raw_request(
            served.port,
            f"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n"
            f"X-Forwarded-For: {forwarded}\r\nX-Real-IP: {forwarded}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(login_body)}\r\n"
            f"Connection: close\r\n\r\n{login_body}",
        )
        return status

    # a new "address" per attempt: the lockout still counts the real peer
    statuses = [attempt(f"203.0.113.{i}") for i in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429], statuses
    for header in ("X-Unix-User: root", "X-Remote-User: root", "X-Forwarded-User: root"):
        status, body = raw_request(
            served.port,
            f"GET /api/users HTTP/1.1\r\nHost: localhost\r\n{header}\r\nConnection: close\r\n\r\n",
        )
        assert status == 401 and body["error"]["code"] == "AUTH_REQUIRED", (header, body)
    assert len(served.app.state.auth.store.users()) == 1
