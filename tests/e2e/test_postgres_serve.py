"""``sdcpp serve --database postgresql://…`` against a throw-away PostgreSQL
(tests/unit/pg_server.py): a job runs end to end with its record in PostgreSQL; two API
processes (each with its engine worker, one shared output dir) on one queue run every job
exactly once; an unreachable database is one error line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
from pg_server import PgServer

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers live beside this file
from test_reliability import sdcpp
from test_serve import REQUEST, Server, data_dir, free_port  # noqa: F401 (fixture)

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")


@pytest.fixture
def url(postgres: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    fresh = postgres.fresh_url()
    monkeypatch.setenv("SDCPP_DATABASE_URL", fresh)  # Server() passes its environment on
    return fresh


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_one_job_end_to_end_on_postgres(data_dir: Path, url: str) -> None:  # noqa: F811
    srv = Server(data_dir).start()
    try:
        job_id = srv.post("/api/generate/text2img", REQUEST).json()["job_id"]
        job = srv.wait(job_id)
        assert job["status"] == "completed", job
        image = srv.get(job["outputs"][0])
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert job_id in str(srv.get("/api/queue/status").json())  # listed from PostgreSQL
    finally:
        srv.stop()
    # The record lives in PostgreSQL (nothing in the data dir's SQLite file for it).
    (status, attempts, heartbeat, lease), *_ = rows(
        url, f"SELECT status, attempts, heartbeat_at, lease_owner FROM jobs WHERE id = '{job_id}'"
    )
    assert (status, attempts, lease) == ("completed", 1, None) and heartbeat is not None
    assert rows(url, "SELECT n FROM job_counts WHERE status = 'completed'") == [(1,)]


def test_two_api_processes_share_one_queue(
    data_dir: Path,  # noqa: F811
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = tmp_path / "shared-outputs"  # a directory every host mounts
    monkeypatch.setenv("SDCPP_OUTPUT_DIR", str(outputs))
    second_dir = tmp_path / "data-b"
    second_dir.mkdir()
    (second_dir / "models").symlink_to(data_dir / "models", target_is_directory=True)
    a = Server(data_dir).start()
    try:
        b = Server(second_dir).start()  # starting must not "recover" anything of A's
    except BaseException:
        a.stop()
        raise
    try:
        ids = [
            srv.post("/api/generate/text2img", {**REQUEST, "seed": i}).json()["job_id"]
            for i, srv in enumerate([a, b] * 2)
        ]
        for job_id in ids:
            job = a.wait(job_id, timeout=400)  # A sees B's jobs too: one queue
            assert job["status"] == "completed" and job["attempts"] == 1, job
            assert job["crashes"] == 0 and len(job["outputs"]) == 1
            for srv in (a, b):  # either process serves every output (shared output dir)
                assert srv.get(job["outputs"][0]).status_code == 200
        assert all(job_id in str(b.get("/api/queue/status").json()) for job_id in ids)
    finally:
        a.stop()
        b.stop()
    done = rows(url, "SELECT id, status, attempts FROM jobs ORDER BY seq")
    assert [(i, "completed", 1) for i in ids] == done  # each exactly once, none re-run
    assert sorted(p.parent.name for p in outputs.glob("*/*.png")) == sorted(ids)


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    port, serve_port = free_port(), free_port()  # nothing listens on the first
    done = subprocess.run(
        [sdcpp(), "serve", "--port", str(serve_port), "--data-dir", str(tmp_path / "d"),
         "--database", f"postgresql://sdcpp:hunter2@127.0.0.1:{port}/jobs"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot connect to PostgreSQL at postgresql://sdcpp:***@127.0.0.1:{port}/jobs" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
    with pytest.raises(httpx.HTTPError):  # it never bound its port
        httpx.get(f"http://127.0.0.1:{serve_port}/", timeout=1)
