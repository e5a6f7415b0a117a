"""The native REST dialect over a fake engine: routing, validation, queue, outputs, events."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def b64_png(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    # a header-valid file is enough: the fake engine never loads it
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", max_queue=5, max_body_mb=1, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def wait_done(client: TestClient, job_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def test_health_status_version_have_request_ids(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    assert len(r.headers["X-Request-ID"]) == 32
    r = client.get("/api/status", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    status = r.json()
    assert status["generation_queue"]["queue_size"] == 0
    assert status["worker"]["state"] == "ready"
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/version").json()["engine_version"].startswith("stable-diffusion")


def test_text2img_job_runs_and_output_downloads(client: TestClient, engine: FakeEngine) -> None:
    r = client.post(
        "/api/generate/text2img",
        json={"prompt": "a cat", "width": 64, "height": 64, "steps": 3, "seed": 5},
    )
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    job = wait_done(client, job_id)
    assert job["status"] == "completed" and job["progress"] == 1.0
    (url,) = job["outputs"]
    png = client.get(url)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (64, 64)
    thumb = client.get(f"/api/v1/jobs/{job_id}/output/image_0.png?thumb=1&size=50")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (50, 50)
    (_, kind, params) = engine.runs[0]
    assert (
        kind == "txt2img" and params["seed"] == 5 and params["model"].endswith("tiny.safetensors")
    )


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"prompt": "x", "width": 65}, 422, "VALIDATION_ERROR"),
        ({"width": 64}, 422, "VALIDATION_ERROR"),  # no prompt
        ({"prompt": "x", "width": "x"}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "steps": 0}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "sampling_method": "nope"}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "unknown_field": 1}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "model_name": "missing"}, 404, "MODEL_NOT_FOUND"),
        ({"prompt": "x", "vae_path": "../../etc/passwd"}, 400, "INVALID_PARAMETERS"),
    ],
)
def test_bad_requests_get_the_envelope(
    client: TestClient, payload: dict[str, Any], status: int, code: str
) -> None:
    r = client.post("/api/generate/text2img", json=payload)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["status_code"] == status
    assert error["request_id"] == r.headers["X-Request-ID"]
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []  # nothing queued


def test_images_are_checked(client: TestClient) -> None:
    ok = client.post("/api/generate/img2img", json={"prompt": "x", "init_image": b64_png()})
    assert ok.status_code == 202
    bad = client.post("/api/generate/img2img", json={"prompt": "x", "init_image": "@@@"})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]["message"]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    r = client.post(
        "/api/generate/img2img",
        json={"prompt": "x", "init_image": base64.b64encode(gif.getvalue()).decode()},
    )
    assert r.status_code == 400 and "not allowed" in r.json()["error"]["message"]


def test_body_limit_is_413(client: TestClient) -> None:
    r = client.post(
        "/api/generate/text2img",
        content=b"{" + b" " * (2 * 2**20) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_cancel_queued_and_running(client: TestClient) -> None:
    slow = client.post("/api/generate/text2img", json={"prompt": "__slow__"}).json()["job_id"]
    queued = client.post("/api/generate/text2img", json={"prompt": "later"}).json()["job_id"]
    r = client.post("/api/queue/cancel", json={"job_id": queued})
    assert r.json()["state"] == "cancelled"
    deadline = time.monotonic() + 5
    while client.get(f"/api/queue/job/{slow}").json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.post("/api/queue/cancel", json={"job_id": slow}).json()["state"] == "cancelling"
    assert wait_done(client, slow)["status"] == "cancelled"
    assert client.get(f"/api/queue/job/{queued}").json()["status"] == "cancelled"
    r = client.post("/api/queue/cancel", json={"job_id": slow})
    assert r.status_code == 409


def test_queue_full_is_503_with_retry_after(client: TestClient) -> None:
    client.post("/api/generate/text2img", json={"prompt": "__slow__"})
    codes = [
        client.post("/api/generate/text2img", json={"prompt": "x"}).status_code for _ in range(7)
    ]
    assert codes.count(503) >= 1
    r = client.post("/api/generate/text2img", json={"prompt": "x"})
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "QUEUE_FULL"
    assert client.post("/api/queue/clear").json()["cleared"] >= 1


def test_crash_and_failure_are_recorded(client: TestClient) -> None:
    failed = client.post("/api/generate/text2img", json={"prompt": "__fail__"}).json()["job_id"]
    assert wait_done(client, failed)["error"] == "boom"
    crashed = client.post("/api/generate/text2img", json={"prompt": "__crash__"}).json()["job_id"]
    job = wait_done(client, crashed)
    assert job["status"] == "failed" and "SIGABRT" in job["error"]
    assert job["attempts"] == 2  # re-queued once after the first crash, not after the second


def test_sync_generate_waits_for_the_images(client: TestClient) -> None:
    r = client.post("/api/v1/generate", json={"prompt": "sync", "batch_count": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and len(body["images"]) == 2
    assert Image.open(io.BytesIO(base64.b64decode(body["images"][0]["data"]))).size == (64, 64)


def test_delete_job_and_unknown_job(client: TestClient) -> None:
    job_id = client.post("/api/generate/text2img", json={"prompt": "x"}).json()["job_id"]
    wait_done(client, job_id)
    assert client.delete(f"/api/queue/job/{job_id}").status_code == 200
    r = client.get(f"/api/queue/job/{job_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "JOB_NOT_FOUND"
    r = client.get(f"/api/queue/job/{job_id}/output/../../sdcpp.db")
    assert r.status_code == 404


def test_websocket_receives_job_updates(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "system_update"
        job_id = client.post("/api/generate/text2img", json={"prompt": "x", "steps": 2}).json()[
            "job_id"
        ]
        seen = []
        while not any(
            m["type"] == "job_update" and m["data"]["status"] == "completed" for m in seen
        ):
            seen.append(ws.receive_json())
        updates = [m["data"] for m in seen if m["type"] == "job_update"]
        assert all(u["job_id"] == job_id for u in updates)
        assert any(u.get("current_step") == 2 for u in updates)
        assert any(m["type"] == "queue_update" for m in seen)


def test_models_and_utilities(client: TestClient) -> None:
    models = client.get("/api/models").json()
    assert [m["name"] for m in models["models"]] == ["tiny"]
    assert "checkpoint" in client.get("/api/models/types").json()["types"]
    assert "euler_a" in client.get("/api/samplers").json()["samplers"]
    assert "karras" in client.get("/api/schedulers").json()["schedulers"]
    assert client.post("/api/validate", json={"prompt": "x"}).json()["valid"] is True
    assert client.post("/api/models/refresh").json()["models_found"] == 0


def test_restart_keeps_queued_jobs_and_requeues_the_running_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.2)
    (settings.models_path / "checkpoints").mkdir(parents=True)
    _safetensors.save(
        settings.models_path / "checkpoints" / "m.safetensors", {"x": np.zeros(2, np.float16)}
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        slow = c.post("/api/generate/text2img", json={"prompt": "__slow__"}).json()["job_id"]
        later = c.post("/api/generate/text2img", json={"prompt": "later"}).json()["job_id"]
        while c.get(f"/api/queue/job/{slow}").json()["status"] != "processing":
            time.sleep(0.01)
    # the server stopped mid-job: a new one picks both up again, nothing is lost
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        while c.get(f"/api/queue/job/{slow}").json()["status"] != "processing":
            time.sleep(0.01)
        # cancelled by the shutdown and given back: that attempt does not count
        again = c.get(f"/api/queue/job/{slow}").json()
        assert again["attempts"] == 1
        c.post("/api/queue/cancel", json={"job_id": slow})
        assert wait_done(c, later)["status"] == "completed"
        assert wait_done(c, slow)["status"] == "cancelled"


def test_openapi_docs_and_system(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    op = spec["paths"]["/api/generate/text2img"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/Text2ImgRequest")
    assert "prompt" in spec["components"]["schemas"]["Text2ImgRequest"]["required"]
    assert "/api/queue/job/{job_id}" in spec["paths"] and "/ws" in spec["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and "/api/generate/text2img" in page.text
    system = client.get("/api/system").json()["system"]
    assert system["cpu"]["physical_cores"] >= 1 and system["memory"]["total"] > 0
    assert system["capabilities"]["cancel"] is True


def test_system_restart_restarts_the_worker_between_jobs(
    client: TestClient, engine: FakeEngine
) -> None:
    stops = []
    original = engine.stop
    engine.stop = lambda timeout=10: (stops.append(1), original(timeout))  # type: ignore[method-assign]
    assert client.post("/api/system/restart").status_code == 202
    deadline = time.monotonic() + 5
    while not stops:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job_id = client.post("/api/generate/text2img", json={"prompt": "x"}).json()["job_id"]
    assert wait_done(client, job_id)["status"] == "completed"
