"""Failure semantics of scale-out (#19), with real ``sdcpp worker`` processes:

- SIGTERM of a worker drains: its running job completes, it takes no other job, it exits 0.
- a worker that loses the database (the PostgreSQL server stopped, then started again on the
  same port) keeps running, takes nothing while it is away, and takes the next job after.
- a job whose worker is killed (``kill -9``) on every attempt is re-queued at most
  ``max_crashes`` times across processes, then failed with the lost lease recorded.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PgServer, start_server

sys.path.insert(0, str(Path(__file__).parent))
from test_postgres_scaleout import LEASE, Cluster, job, submit

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")


def _cluster(tmp_path: Path, url: str, tiny_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.setenv("SDCPP_DATABASE_URL", url)
    monkeypatch.setenv("SDCPP_RUN_WORKER", "0")
    monkeypatch.setenv("SDCPP_OUTPUT_DIR", str(tmp_path / "shared-outputs"))
    monkeypatch.setenv("SDCPP_LEASE_SECONDS", LEASE)
    monkeypatch.setenv("SDCPP_WORKER_IDLE_PRIORITY", "0")
    return Cluster(tmp_path, url, tiny_path)


@pytest.fixture
def cluster(
    postgres: PgServer, tmp_path: Path, tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    c = _cluster(tmp_path, postgres.fresh_url(), tiny_path, monkeypatch)
    try:
        yield c
    finally:
        c.close()


def _sampling(c: Cluster, api: object, job_id: str) -> None:
    c.wait_for(
        f"job {job_id} to sample",
        lambda: api.get(f"/api/queue/job/{job_id}").json().get("step", 0) >= 1,  # type: ignore[attr-defined]
        timeout=300,
    )


def test_sigterm_drains_the_running_job_and_takes_no_other(cluster: Cluster) -> None:
    a = cluster.api("api-a")
    worker = cluster.worker(args=("--shutdown-grace", "600"))
    running = submit(a, job("tiny-a", 1, steps=8))
    _sampling(cluster, a, running)
    waiting = submit(a, job("tiny-a", 2))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=600) == 0
    done = a.get(f"/api/queue/job/{running}").json()
    assert done["status"] == "completed" and done["attempts"] == 1, done
    left = a.get(f"/api/queue/job/{waiting}").json()
    assert left["status"] == "queued" and left["attempts"] == 0, left  # not taken while draining
    assert cluster.wait_for(
        "the worker's row to go", lambda: a.get("/api/status").json().get("workers") == [] or None
    )


def test_a_worker_that_loses_the_database_resumes(
    tmp_path: Path, tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()  # its own server: this test stops it
    c = _cluster(tmp_path, server.fresh_url(), tiny_path, monkeypatch)
    try:
        a = c.api("api-a")
        worker = c.worker()
        c.wait_for("the worker", lambda: a.get("/api/status").json().get("workers"))
        server.pause()
        time.sleep(3)  # the outage: its claims and heartbeats fail meanwhile
        assert worker.poll() is None  # still running, not crashed by the outage
        server.resume()
        job_id = c.wait_for(  # the API process reconnects too
            "the API to take a job again",
            lambda: (
                (r := a.post("/api/generate/text2img", job("tiny-a", 3))).status_code in (200, 202)
                and r.json()["job_id"]
            ),
        )
        done = a.wait(job_id, timeout=600)
        assert done["status"] == "completed" and done["attempts"] == 1, done
        assert worker.poll() is None
    finally:
        c.close()
        server.stop()


def test_a_job_killing_every_worker_fails_after_max_crashes_attempts(cluster: Cluster) -> None:
    a = cluster.api("api-a")
    job_id = submit(a, job("tiny-a", 4, steps=40))
    for attempt in (1, 2):  # max_crashes is 2: two workers die running it
        victim = cluster.worker()
        cluster.wait_for(
            f"attempt {attempt} to sample",
            lambda n=attempt: (
                (j := a.get(f"/api/queue/job/{job_id}").json())["attempts"] == n
                and j.get("step", 0) >= 1
            ),
            timeout=300,
        )
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    cluster.worker()  # the sweeper: the lease expires, two attempts are spent, it fails it
    done = a.wait(job_id, timeout=300)
    assert done["status"] == "failed" and done["attempts"] == 2, done
    assert "lease of" in (done["last_error"] or ""), done  # the loss is recorded
    assert cluster.rows(f"SELECT status, attempts FROM jobs WHERE id = '{job_id}'") == [
        ("failed", 2)
    ]
