"""Scaling out (README "Scaling out"): two API processes (``sdcpp serve --no-worker``) and two
``sdcpp worker`` processes on one throw-away PostgreSQL, a shared output dir, a synthetic model
under two names. Worker 1 serves only ``tiny-a``; worker 2 serves every model.

- 20 jobs of two models, submitted half to each API process: every job completes exactly once
  (counted in the database and on disk), ``tiny-b`` jobs all ran on worker 2; both workers
  are in ``/api/status``.
- a job running on a worker is seen progressing through the other API process, and a cancel
  sent to that process stops it.
- ``/metrics`` and ``/api/telemetry`` of either API process show both workers.
- outputs: every worker writes to the one folder all hosts mount (``--output-dir``), and any
  API process serves any output from it (README "Scaling out": the choice).
- ``kill -9`` of a worker mid-job: its job is re-queued once its lease (3 s) expires and
  completes on the other worker (attempts 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import PgServer

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers live beside this file
from test_reliability import sdcpp
from test_serve import REQUEST, Server

psycopg = pytest.importorskip("psycopg", reason="pip install 'sdcpp[postgres]'")

LEASE = "3"  # seconds: a killed worker's job is re-queued this long after its last heartbeat


class Cluster:
    def __init__(self, root: Path, url: str, tiny_path: Path) -> None:
        self.root, self.url = root, url
        self.models = root / "models"
        (self.models / "checkpoints").mkdir(parents=True)
        for name in ("tiny-a", "tiny-b"):
            os.link(tiny_path, self.models / "checkpoints" / f"{name}.safetensors")
        self.outputs = root / "shared-outputs"  # the folder every host mounts
        self.apis: list[Server] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def api(self, name: str) -> Server:
        data = self.root / name
        data.mkdir()
        (data / "models").symlink_to(self.models, target_is_directory=True)
        srv = Server(data).start()
        self.apis.append(srv)
        return srv

    def worker(self, *models: str, args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        cmd = [sdcpp(), "worker", "--database", self.url, "--models-dir", str(self.models),
               "--output-dir", str(self.outputs), "--data-dir", str(self.root / "worker"),
               "--threads", "1"]  # fmt: skip
        cmd += list(args)
        if models:
            cmd += ["--models", *models]
        # its own process group: kill -9 takes its engine process with it
        proc = subprocess.Popen(cmd, env=os.environ.copy(), start_new_session=True)
        self.workers.append(proc)
        return proc

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]

    def wait_for(self, what: str, check: Any, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := check():
                return found
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for srv in self.apis:
            srv.stop()


@pytest.fixture
def cluster(
    postgres: PgServer, tmp_path: Path, tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    url = postgres.fresh_url()
    monkeypatch.setenv("SDCPP_DATABASE_URL", url)  # Server() passes its environment on
    monkeypatch.setenv("SDCPP_RUN_WORKER", "0")  # the API processes: --no-worker
    monkeypatch.setenv("SDCPP_OUTPUT_DIR", str(tmp_path / "shared-outputs"))
    monkeypatch.setenv("SDCPP_LEASE_SECONDS", LEASE)
    monkeypatch.setenv("SDCPP_WORKER_IDLE_PRIORITY", "0")  # SCHED_IDLE starves on a busy box
    c = Cluster(tmp_path, url, tiny_path)
    try:
        yield c
    finally:
        c.close()


def job(model: str, seed: int, steps: int = 2) -> dict[str, Any]:
    return {**REQUEST, "model": model, "seed": seed, "steps": steps}


def submit(api: Server, body: dict[str, Any]) -> str:
    answer = api.post("/api/generate/text2img", body)
    assert answer.status_code in (200, 202), answer.text
    return str(answer.json()["job_id"])


def ran_on(cluster: Cluster) -> dict[str, str]:
    return dict(cluster.rows("SELECT job_id, worker_id FROM job_live"))  # type: ignore[arg-type]


def test_two_apis_two_workers_each_job_once(cluster: Cluster) -> None:
    a, b = cluster.api("api-a"), cluster.api("api-b")
    w1, w2 = cluster.worker("tiny-a"), cluster.worker()
    status = cluster.wait_for(
        "both workers in /api/status",
        lambda: (s := b.get("/api/status").json()) and len(s.get("workers", [])) == 2 and s,
    )
    pids = {w["pid"]: w for w in status["workers"]}
    assert set(pids) == {w1.pid, w2.pid}
    assert pids[w1.pid]["models"] == ["tiny-a"] and pids[w2.pid]["models"] == []
    assert all(w["host"] and w["last_heartbeat"] and w["device"] for w in status["workers"])
    metrics = b.get("/metrics").text  # every worker, whichever API process is scraped
    assert all(f'pid="{p.pid}"' in metrics for p in (w1, w2))
    telemetry = b.get("/api/telemetry").json()["sdcpp"]["workers"]
    assert {w["pid"] for w in telemetry} == {w1.pid, w2.pid}
    ids = {}
    for i in range(20):
        model = ("tiny-a", "tiny-b")[i % 2]
        ids[submit((a, b)[(i // 2) % 2], job(model, i))] = model
    for job_id in ids:
        done = a.wait(job_id, timeout=600)  # A sees every job, B's included: one queue
        assert done["status"] == "completed" and done["attempts"] == 1, done
        assert b.get(done["outputs"][0]).status_code == 200  # any API serves any output
    rows = cluster.rows("SELECT id, status, attempts, crashes FROM jobs")
    assert sorted(rows) == sorted((i, "completed", 1, 0) for i in ids)  # each exactly once
    assert sorted(p.parent.name for p in cluster.outputs.glob("*/*.png")) == sorted(ids)
    workers = {w["id"]: w["pid"] for w in status["workers"]}
    ran = {job_id: workers[w] for job_id, w in ran_on(cluster).items()}
    assert all(ran[i] == w2.pid for i, model in ids.items() if model == "tiny-b")


def test_progress_and_cancel_across_processes(cluster: Cluster) -> None:
    a, b = cluster.api("api-a"), cluster.api("api-b")
    cluster.worker()
    job_id = submit(a, job("tiny-a", 1, steps=150))

    def sampling_on_b() -> dict[str, Any] | None:
        seen = b.get(f"/api/queue/job/{job_id}").json()
        return seen if seen.get("phase") == "sampling" and seen.get("step", 0) >= 1 else None

    seen = cluster.wait_for("B to show A's job sampling", sampling_on_b, timeout=300)
    assert seen["status"] == "processing" and seen["total_steps"] == 150
    assert b.post("/api/queue/cancel", {"job_id": job_id}).status_code in (200, 202)
    ended = a.wait(job_id, timeout=60)  # one step is about a second here
    assert ended["status"] == "cancelled", ended


def test_kill_9_of_a_worker_requeues_its_job_to_the_other(cluster: Cluster) -> None:
    a = cluster.api("api-a")
    victim = cluster.worker("tiny-a")
    job_id = submit(a, job("tiny-a", 7, steps=30))
    cluster.wait_for(
        "the job to sample on the victim",
        lambda: a.get(f"/api/queue/job/{job_id}").json().get("step", 0) >= 1,
        timeout=300,
    )
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    cluster.worker()  # the survivor: it sweeps the expired lease, then claims the job
    done = a.wait(job_id, timeout=600)
    assert done["status"] == "completed" and done["attempts"] == 2, done
    assert "lease of" in (done["last_error"] or ""), done
    assert cluster.rows(f"SELECT status FROM jobs WHERE id = '{job_id}'") == [("completed",)]
