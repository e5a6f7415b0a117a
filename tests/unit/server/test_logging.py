"""Server logging (server/logs.py): levels, JSON lines, rotation, access lines without secrets,
job ids on every line a job causes, worker lines tagged."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.errors import InvalidArgument
from sdcpp.server import Settings, create_app, logs
from sdcpp.server.worker import protocol
from sdcpp.server.worker.client import EngineClient


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """Settings logging JSON lines to a file; the handlers come off after the test."""
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    log = tmp_path / "logs" / "server.log"
    settings = Settings(
        data_dir=tmp_path / "data",
        shutdown_grace=0.5,
        log_file=log,
        log_format="json",
        auth=("jwt", "api-key"),
    )
    root = logging.getLogger()
    level = root.level
    handlers = logs.configure(settings, replace=False)
    try:
        yield settings, log
    finally:
        logs.unconfigure(handlers)
        root.setLevel(level)
        logging.getLogger("sdcpp.native").setLevel(logging.NOTSET)


def lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_failed_jobs_log_lines_carry_its_job_id(logged: tuple[Settings, Path]) -> None:
    settings, log = logged
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        auth = client.app.state.auth  # type: ignore[attr-defined]
        token, _ = auth.issue_token(auth.store.add_user("ann"))
        headers = {"Authorization": f"Bearer {token}"}
        r = client.post(
            "/api/generate/text2img", json={"prompt": "__fail__", "steps": 2}, headers=headers
        )
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 10
        while client.get(f"/api/queue/job/{job_id}", headers=headers).json()["status"] not in (
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    mine = [line for line in lines(log) if line.get("job_id") == job_id]
    failed = [line for line in mine if "failed" in line["message"]]
    assert failed and failed[0]["level"] == "warning" and "boom" in failed[0]["message"]
    assert all(line["logger"] != "sdcpp.access" for line in mine)  # requests are not the job's


def test_one_access_line_per_request_without_secrets(logged: tuple[Settings, Path]) -> None:
    settings, log = logged
    secret = "s3cr3t-token-value"
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        auth = client.app.state.auth  # type: ignore[attr-defined]
        token, _ = auth.issue_token(auth.store.add_user("bob"))
        r = client.get(
            f"/api/queue/job/{'0' * 32}?sig={secret}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-1"},
        )
        assert r.status_code == 404
        client.get("/api/models", headers={"X-API-Key": secret})  # a wrong key: 401
        client.post("/api/auth/login", json={"username": "bob", "password": secret})
    # the server's lines (the test's own HTTP client logs its URLs in this process too)
    text = "\n".join(json.dumps(x) for x in lines(log) if x["logger"].startswith("sdcpp"))
    assert secret not in text and token not in text
    access = [line for line in lines(log) if line["logger"] == "sdcpp.access"]
    assert len(access) == 3
    first = access[0]
    assert first["request_id"] == "req-1"
    assert first["route"] == "/api/queue/job/{job_id:str}"
    assert first["path"] == f"/api/queue/job/{'0' * 32}"
    assert first["status"] == 404 and first["method"] == "GET" and first["user"] == "bob"
    assert isinstance(first["duration_ms"], float) and first["client"]
    assert access[1]["status"] == 401 and access[1]["user"] == "guest"
    assert access[2]["route"] == "/api/auth/login"


def test_probes_log_at_debug_only(logged: tuple[Settings, Path]) -> None:
    settings, log = logged
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        client.get("/livez")
        client.get("/readyz")
        client.get("/api/version")
    routes = [line["route"] for line in lines(log) if line["logger"] == "sdcpp.access"]
    assert routes == ["/api/version"]


def test_worker_lines_are_tagged_and_carry_the_running_job(
    logged: tuple[Settings, Path],
) -> None:
    _, log = logged
    client = EngineClient()  # never started: only its log routing is used
    client._pid = 4242
    with logs.job_context("a" * 32):
        client._log(protocol.Log(level="error", text="sdcpp.native: out of memory"))
    client._log(protocol.Log(level="warning", text="sdcpp.server.worker.process: hm"))
    engine, worker = lines(log)[-2:]
    assert engine["source"] == "engine" and engine["worker_pid"] == 4242
    assert engine["job_id"] == "a" * 32 and engine["level"] == "error"
    assert "out of memory" in engine["message"]
    assert worker["source"] == "worker" and "job_id" not in worker


def test_text_format_tags_job_and_request(tmp_path: Path) -> None:
    record = logging.LogRecord("sdcpp.x", logging.WARNING, __file__, 1, "hello %s", ("w",), None)
    with logs.job_context("b" * 32):
        logs.ContextFilter().filter(record)
    text = logs.TextFormatter().format(record)
    assert text.endswith(f"WARNING sdcpp.x [job {'b' * 32}]: hello w")


def test_the_log_file_rotates(tmp_path: Path) -> None:
    settings = Settings(log_file=tmp_path / "s.log", log_max_mb=1, log_backups=2)
    handlers = logs.configure(settings, replace=False)
    try:
        chatty = logging.getLogger("sdcpp.test.rotation")
        for i in range(4000):
            chatty.warning("line %d %s", i, "x" * 1000)
    finally:
        logs.unconfigure(handlers)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["s.log", "s.log.1", "s.log.2"]  # 4 MB written, 3 files of <= 1 MiB kept
    assert all((tmp_path / f).stat().st_size <= 2**20 + 2000 for f in files)


def test_levels_verbose_and_rust_log() -> None:
    assert logs.level_of(Settings()) == logging.INFO
    assert logs.level_of(Settings.load(cli={"log_level": "WARN"}, env={})) == logging.WARNING
    assert logs.level_of(Settings.load(env={"SDCPP_VERBOSE": "true"})) == logging.DEBUG
    assert logs.level_of(Settings.load(env={"RUST_LOG": "debug"})) == logging.DEBUG
    assert logs.level_of(Settings.load(env={"RUST_LOG": "info"})) == logging.INFO
    assert logs.worker_level(Settings(verbose=True)) == "debug"
    assert logs.worker_level(Settings()) == "warning"
    with pytest.raises(InvalidArgument, match="log_level must be one of"):
        Settings.load(cli={"log_level": "loud"}, env={})
    with pytest.raises(InvalidArgument, match="log_format"):
        Settings.load(cli={"log_format": "xml"}, env={})


def test_client_chosen_paths_cannot_forge_log_lines(logged: tuple[Settings, Path]) -> None:
    settings, log = logged
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        client.get("/api/queue/job/x%0A2026-01-01 FAKE sdcpp.access: GET /admin 200")
        client.get("/" + "a" * 5000)
    access = [line for line in lines(log) if line["logger"] == "sdcpp.access"]
    assert access[0]["path"] == "/api/queue/job/x\\x0a2026-01-01 FAKE sdcpp.access: GET /admin 200"
    assert "\n" not in access[0]["message"]
    assert len(access[1]["path"]) == 512 + 3 and access[1]["route"] == "unmatched"
