"""``sdcpp users`` / ``sdcpp keys`` against a running app's database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp.cli import main
from sdcpp.server import Settings, create_app


def sdcpp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_users_and_keys_while_the_server_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, shutdown_grace=0.5, auth=("jwt", "api-key"))
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        d = ("--data-dir", str(data))
        monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
        assert (
            sdcpp(capsys, "users", "add", "dana", "--role", "admin", "--password-stdin", *d)[0] == 0
        )
        login = {"username": "dana", "password": "a long password"}
        assert client.post("/api/auth/login", json=login).status_code == 200

        code, out = sdcpp(capsys, "keys", "create", "--user", "dana", "--name", "ci", "--json", *d)
        created = json.loads(out)
        key = created["key"]
        assert code == 0 and key.startswith("sdk_") and created["user"] == "dana"
        h = {"X-API-Key": key}
        assert client.get("/api/users", headers=h).status_code == 200

        code, out = sdcpp(capsys, "keys", "list", *d)
        assert created["prefix"] in out and key not in out  # the key is shown once only
        assert sdcpp(capsys, "users", "role", "dana", "user", *d)[0] == 0
        assert client.get("/api/users", headers=h).status_code == 403  # at once

        assert sdcpp(capsys, "keys", "revoke", created["prefix"], *d)[0] == 0
        assert client.get("/api/auth/me", headers=h).status_code == 401

        key2 = json.loads(sdcpp(capsys, "keys", "create", "--user", "dana", "--json", *d)[1])["key"]
        assert sdcpp(capsys, "users", "disable", "dana", *d)[0] == 0
        assert client.get("/api/auth/me", headers={"X-API-Key": key2}).status_code == 401
        assert client.post("/api/auth/login", json=login).status_code == 401
        assert sdcpp(capsys, "users", "enable", "dana", *d)[0] == 0

        monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
        assert sdcpp(capsys, "users", "passwd", "dana", "--password-stdin", *d)[0] == 0
        assert client.post("/api/auth/login", json=login).status_code == 401
        new = {"username": "dana", "password": "another password"}
        assert client.post("/api/auth/login", json=new).status_code == 200

        listed = json.loads(sdcpp(capsys, "users", "list", "--json", *d)[1])
        assert [(u["username"], u["role"], u["active"]) for u in listed] == [("dana", "user", True)]
        assert sdcpp(capsys, "users", "delete", "dana", *d)[0] == 0
        assert client.get("/api/auth/me", headers={"X-API-Key": key2}).status_code == 401
        assert sdcpp(capsys, "users", "delete", "dana", *d)[0] == 1  # no such user: one line


def test_users_add_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    d = ("--data-dir", str(tmp_path / "data"))
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "eve", "--password-stdin", *d]) == 1
    assert "8 to 1024" in capsys.readouterr().err
    assert main(["users", "add", "../eve", "--no-password", *d]) == 1
    assert main(["keys", "create", "--user", "ghost", *d]) == 1
    assert main(["users", "list", "--data-dir", str(tmp_path / "missing")]) == 1
