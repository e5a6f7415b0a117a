"""A real ``sdcpp serve`` subprocess on a free port, with the real worker and a synthetic model."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

REQUEST = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        script = shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))
        env = {
            **os.environ,
            "SDCPP_TEST_HOOKS": "1",
            "SDCPP_THREADS": "2",
            "SDCPP_CANCEL_GRACE": "5",
        }
        self.proc = subprocess.Popen(
            [script, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)], env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "server exited during start-up"
            time.sleep(0.2)
        raise AssertionError("server did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30)

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/api/queue/job/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def data_dir(tmp_path: Path, tiny_path: Path) -> Path:
    checkpoints = tmp_path / "data" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    os.link(tiny_path, checkpoints / "tiny.safetensors")
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    srv = Server(data_dir).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_generate_poll_download(server: Server) -> None:
    job_id = server.post("/api/generate/text2img", REQUEST).json()["job_id"]
    job = server.wait(job_id)
    assert job["status"] == "completed", job
    png = server.get(job["outputs"][0])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"a red fox" in png.content  # the A1111 parameters text travels with the image
    thumb = server.get(f"/api/v1/jobs/{job_id}/output/image_0.png?thumb=1&size=50")
    assert thumb.status_code == 200


def test_worker_crash_is_isolated(server: Server) -> None:
    pid_before = server.get("/api/status").json()["worker"]["pid"]
    crash = server.post("/api/generate/text2img", {**REQUEST, "prompt": "__crash__"}).json()
    after = server.post("/api/generate/text2img", REQUEST).json()
    job = server.wait(crash["job_id"])
    assert job["status"] == "failed" and "SIGABRT" in job["error"]
    assert server.get("/api/health").status_code == 200
    assert server.wait(after["job_id"])["status"] == "completed"
    assert server.get("/api/status").json()["worker"]["pid"] != pid_before


def test_cancel_running_job(server: Server) -> None:
    job_id = server.post("/api/generate/text2img", {**REQUEST, "steps": 150}).json()["job_id"]
    deadline = time.monotonic() + 60
    while server.get(f"/api/queue/job/{job_id}").json().get("current_step", 0) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    assert server.post("/api/queue/cancel", {"job_id": job_id}).json()["state"] == "cancelling"
    job = server.wait(job_id)
    assert job["status"] == "cancelled"
    assert time.monotonic() - started < 5  # stops at the next step, not after 150


def test_v1_generate_waits_for_the_images_and_cancels_when_its_client_leaves(
    server: Server,
) -> None:
    answer = server.post("/api/v1/generate", REQUEST)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed" and body["generation_time"] > 0
    (image,) = body["images"]
    assert base64.b64decode(image["data"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert image["seed"] == REQUEST["seed"] and image["parameters"].startswith("a red fox")

    # a client that stops waiting: its job is cancelled rather than left to run 150 steps
    long = {**REQUEST, "steps": 150}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/api/v1/generate", json=long, timeout=httpx.Timeout(30, read=1))
    jobs = server.get("/api/queue/status").json()["queue"]["jobs"]
    (left,) = [job for job in jobs if job["total_steps"] == 150]
    started = time.monotonic()
    assert server.wait(left["id"], timeout=30)["status"] == "cancelled"
    assert time.monotonic() - started < 10


def test_sse_streams_job_updates(server: Server) -> None:
    with httpx.stream("GET", f"{server.url}/api/events", timeout=60) as stream:
        job_id = server.post("/api/generate/text2img", REQUEST).json()["job_id"]
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "job_update":
                data = json.loads(line[5:])
                if data["job_id"] == job_id and data["status"] == "completed":
                    break
    assert data["outputs"]


def test_kill_9_mid_queue_loses_nothing(data_dir: Path) -> None:
    srv = Server(data_dir).start()
    ids = [
        srv.post("/api/generate/text2img", {**REQUEST, "seed": i}).json()["job_id"]
        for i in range(3)
    ]
    srv.stop(signal.SIGKILL)
    srv = Server(data_dir).start()
    try:
        statuses = [srv.wait(i)["status"] for i in ids]
        assert statuses == ["completed"] * 3
    finally:
        srv.stop()
