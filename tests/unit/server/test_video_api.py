"""POST /api/generate/video over a fake engine: validation, the queued job and its params."""

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
from test_detect import flux, wan
from test_plan import clip_vision_h, put, umt5, wan_vae

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def b64_png(size: tuple[int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_client(tmp_path: Path, engine: FakeEngine, *, with_wan: bool = True) -> TestClient:
    models = tmp_path / "data" / "models"
    (models / "checkpoints").mkdir(parents=True)
    _safetensors.save(models / "checkpoints/tiny.safetensors", {"x": np.zeros(2, np.float16)})
    if with_wan:  # a Wan 2.1 T2V with the companions its plan asks for
        put(models, "diffusion_models/wan.safetensors", wan(2, 64, 16))
        put(models, "vae/wan21.safetensors", wan_vae(16))
        put(models, "text_encoders/umt5.safetensors", umt5())
    settings = Settings(data_dir=tmp_path / "data", max_queue=5, shutdown_grace=0.5)
    return TestClient(create_app(settings, engine=engine))


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    with make_client(tmp_path, engine) as c:
        yield c


def wait_done(client: TestClient, job_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def test_video_job_is_queued_with_the_worker_params(
    client: TestClient, engine: FakeEngine, tmp_path: Path
) -> None:
    r = client.post(
        "/api/generate/video",
        json={
            "prompt": "waves at dusk",
            "negative_prompt": "blurry",
            "width": 480,
            "height": 320,
            "video_frames": 9,
            "steps": 2,
            "cfg_scale": 5.0,
            "sampling_method": "euler",
            "scheduler": "simple",
            "flow_shift": 3.0,
            "high_noise_steps": 1,
            "moe_boundary": 0.9,
            "seed": 4,
            "fps": 8,
            "output_format": "gif",
            "clip_on_cpu": True,
            "vae_path": "vae/wan21.safetensors",
        },
    )
    assert r.status_code == 202, r.json()
    job = wait_done(client, r.json()["job_id"])
    assert job["type"] == "video" and job["status"] == "completed"
    ((_, kind, params),) = engine.runs
    models = tmp_path / "data" / "models"
    assert kind == "video"
    assert params == {
        "prompt": "waves at dusk",
        "negative_prompt": "blurry",
        "width": 480,
        "height": 320,
        "video_frames": 9,
        "steps": 2,
        "cfg_scale": 5.0,
        "sample_method": "euler",
        "scheduler": "simple",
        "flow_shift": 3.0,
        "high_noise_steps": 1,
        "moe_boundary": 0.9,
        "seed": 4,
        "keep_clip_on_cpu": True,
        # no model_name: the first video model; the worker plans companions from models_dir
        "model": str(models / "diffusion_models/wan.safetensors"),
        "models_dir": str(models),
        "vae": str((models / "vae/wan21.safetensors").resolve()),
        "fps": 8.0,
        "output_format": "gif",
    }


def test_init_image_sets_the_size_and_is_stored(client: TestClient, engine: FakeEngine) -> None:
    r = client.post(
        "/api/generate/video",
        json={"prompt": "x", "model_name": "wan", "init_image": b64_png((64, 48))},
    )
    assert r.status_code == 202, r.json()
    wait_done(client, r.json()["job_id"])
    params = engine.runs[0][2]
    assert (params["width"], params["height"]) == (64, 48)
    assert params["init_image_path"].endswith("init_image.png") and "seed" not in params
    mismatch = client.post(
        "/api/generate/video",
        json={"prompt": "x", "width": 32, "init_image": b64_png((64, 48))},
    )
    assert mismatch.status_code == 400
    assert "init_image is 64x48, the video 32x48" in mismatch.json()["error"]["message"]
    odd = client.post("/api/generate/video", json={"prompt": "x", "init_image": b64_png((60, 48))})
    assert odd.status_code == 400 and "multiple of 16" in odd.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"prompt": "x", "width": 100}, 422, "VALIDATION_ERROR"),  # not a multiple of 16
        ({"prompt": "x", "height": 8}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "video_frames": 0}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "fps": 0}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "output_format": "mp4"}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "moe_boundary": 1.5}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "sampling_method": "nope"}, 422, "VALIDATION_ERROR"),
        ({"prompt": "x", "batch_count": 2}, 422, "VALIDATION_ERROR"),  # an image field
        ({"prompt": "x", "end_image": "AAAA"}, 422, "VALIDATION_ERROR"),  # no init_image
        ({"width": 64}, 422, "VALIDATION_ERROR"),  # no prompt
        ({"prompt": "x", "model_name": "missing"}, 404, "MODEL_NOT_FOUND"),
        ({"prompt": "x", "t5xxl_path": "../../etc/passwd"}, 400, "INVALID_PARAMETERS"),
    ],
)
def test_bad_video_requests_queue_nothing(
    client: TestClient, payload: dict[str, Any], status: int, code: str
) -> None:
    r = client.post("/api/generate/video", json=payload)
    assert r.status_code == status, r.json()
    assert r.json()["error"]["code"] == code
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []


def test_no_video_model_installed_is_404(tmp_path: Path, engine: FakeEngine) -> None:
    with make_client(tmp_path, engine, with_wan=False) as c:
        r = c.post("/api/generate/video", json={"prompt": "x"})
        assert r.status_code == 404 and "no video model installed" in r.json()["error"]["message"]
        # a checkpoint of no known family is queued: the engine has the final word
        assert c.post("/api/generate/video", json={"prompt": "x", "model_name": "tiny"}).is_success


def test_a_missing_video_companion_is_422_naming_each_file_before_queuing(
    client: TestClient, tmp_path: Path
) -> None:
    models = tmp_path / "data" / "models"
    (models / "text_encoders/umt5.safetensors").unlink()
    put(models, "diffusion_models/wan_i2v.safetensors", wan(2, 64, 36, img_emb=True))
    assert client.post("/api/models/refresh").is_success
    r = client.post("/api/generate/video", json={"prompt": "x", "model_name": "wan_i2v"})
    assert r.status_code == 422, r.json()
    error = r.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED"
    # each missing file and where it goes; the VAE the dir has is not asked for
    message = error["message"]
    assert "needs t5xxl: put a UMT5-XXL encoder" in message and "needs vae" not in message
    assert "needs clip_vision: put a CLIP vision ViT-H encoder" in message
    assert "in models/text_encoders/" in message
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []
    # once the files are in place the same request is queued, its plan in the job's JSON
    put(models, "text_encoders/umt5.safetensors", umt5())
    put(models, "text_encoders/clip_vision_h.safetensors", clip_vision_h())
    assert client.post("/api/models/refresh").is_success
    r = client.post("/api/generate/video", json={"prompt": "x", "model_name": "wan_i2v"})
    assert r.status_code == 202, r.json()
    plan = client.get(f"/api/queue/job/{r.json()['job_id']}").json()["plan"]
    assert plan["load_as"] == "diffusion_model" and plan["model"] == "wan_i2v.safetensors"
    assert plan["files"] == {
        "vae": "wan21.safetensors",
        "t5xxl": "umt5.safetensors",
        "clip_vision": "clip_vision_h.safetensors",
    }


def test_an_explicit_companion_wins_and_an_image_model_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    models = tmp_path / "data" / "models"
    put(models, "vae/wan21_other.safetensors", wan_vae(16))
    put(models, "diffusion_models/flux.safetensors", flux())
    assert client.post("/api/models/refresh").is_success
    r = client.post(
        "/api/generate/video", json={"prompt": "x", "vae_path": "vae/wan21_other.safetensors"}
    )
    assert r.status_code == 202, r.json()
    plan = client.get(f"/api/queue/job/{r.json()['job_id']}").json()["plan"]
    assert plan["files"]["vae"] == "wan21_other.safetensors"
    image_only = client.post("/api/generate/video", json={"prompt": "x", "model_name": "flux"})
    assert image_only.status_code == 400, image_only.json()
    assert "generates images, not video" in image_only.json()["error"]["message"]


def test_openapi_documents_the_video_body(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/api/generate/video"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/VideoGenerateRequest")
