"""Seed 001 (Diffusion API) over a fake engine: lists, txt2img defaults, queue shape, errors."""

from __future__ import annotations

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
from sdcpp.server.dialects.diffusionapi import render


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", max_queue=5, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def wait_state(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get(f"/queue/{job_id}").json()
        if body["state"] in ("done", "error"):
            return body
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_hello_and_lists(client: TestClient) -> None:
    assert client.get("/hello").json() == {"ok": True}
    models = client.get("/models").json()
    assert models["status"] == "success"
    assert [m["name"] for m in models["models"]] == ["tiny"]
    assert models["models"][0]["type"] in ("standard", "sdxl")
    assert client.get("/loras").json() == {"status": "success", "loras": []}
    ups = client.get("/upscalers").json()
    assert ups["upscalers"][0] == {"name": "Latent", "path": "internal"}


def test_txt2img_defaults_and_done_shape(client: TestClient) -> None:
    r = client.post("/txt2img", json={"prompt": "a forest", "width": 64, "height": 64})
    assert r.status_code == 200 and r.json()["status"] == "queued"
    job_id = r.json()["job_id"]
    body = wait_state(client, job_id)
    assert body["state"] == "done" and body["progress"] == 100
    assert body["current_phase"] == "done" and body["status"] == "success"
    assert body["file_type"] == "jpg" and body["jpeg_quality"] == 85
    assert body["payload"]["steps"] == 30 and body["payload"]["cfg_scale"] == 7.0
    assert Path(body["output_path"]).is_file() and body["image"]  # the fake engine writes PNG
    params = client.get(f"/api/queue/job/{job_id}").json()
    assert params["status"] == "completed"  # an ordinary job in the one queue


def test_sampler_map_and_hires_params(client: TestClient, engine: FakeEngine) -> None:
    hires = {"enabled": True, "scale": 2.0, "upscaler": "Latent", "steps": 3}
    r = client.post("/txt2img", json={"prompt": "x", "width": 64, "height": 64, "hires": hires})
    job = client.get(f"/api/queue/job/{r.json()['job_id']}").json()
    assert job["status"] in ("queued", "processing", "completed")
    wait_state(client, r.json()["job_id"])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"width": 64}, 422, "prompt"),
        ({"prompt": "x", "width": 65}, 422, "width"),
        ({"prompt": "x", "model": "nope"}, 404, "nope"),
        ({"prompt": "x", "loras": ["missing-lora"]}, 404, "missing-lora"),
        ({"prompt": "x", "hires": {"enabled": True, "upscaler": "ESR"}}, 404, "ESR"),
        ({"prompt": "x", "sampler_name": "Bogus"}, 400, "DPM++ 2M Karras"),
    ],
)
def test_errors_in_seed_style(
    client: TestClient, body: dict[str, Any], status: int, needle: str
) -> None:
    r = client.post("/txt2img", json=body)
    assert r.status_code == status
    assert r.json()["status"] == "error" and needle in r.json()["error"]


def test_unknown_job(client: TestClient) -> None:
    r = client.get("/queue/nope")
    assert r.status_code == 404 and r.json()["status"] == "error"


def test_health_probes(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}  # seed 000
    assert client.get("/api/health").json()["status"] == "healthy"  # seed 004


def test_hires_reaches_the_engine_as_its_second_pass(
    client: TestClient, engine: FakeEngine
) -> None:
    hires = {"enabled": True, "scale": 2.0, "upscaler": "Latent", "steps": 3}
    r = client.post("/txt2img", json={"prompt": "x", "width": 64, "height": 64, "hires": hires})
    assert wait_state(client, r.json()["job_id"])["state"] == "done"
    params = engine.runs[-1][2]
    assert params["hires"]["upscaler"] == "Latent" and params["hires"]["steps"] == 3
    assert params["hires"]["scale"] == 2.0 and params["hires"]["denoising_strength"] == 0.4
    assert params["sample_method"] == "dpm++2m" and params["scheduler"] == "karras"
    assert params["output_format"] == "jpeg" and params["output_quality"] == 85


def test_refiner_is_a_second_img2img_job(tmp_path: Path, engine: FakeEngine) -> None:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True)
    for name in ("tiny", "refiner"):
        _safetensors.save(models / f"{name}.safetensors", {name: np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=engine)) as client:
        _refined(client, engine)


def _refined(client: TestClient, engine: FakeEngine) -> None:
    body = {"prompt": "x", "model": "tiny", "width": 64, "height": 64, "steps": 10}
    body["refiner_checkpoint"] = "refiner"
    r = client.post("/txt2img", json={**body, "refiner_switch_at": 0.7})
    assert r.status_code == 200, r.text
    base_id = r.json()["job_id"]
    done = wait_state(client, base_id)
    assert done["state"] == "done" and done["job_id"] == base_id and done["progress"] == 100
    (base, refiner) = engine.runs
    assert base[0] == base_id and base[1] == "txt2img" and base[2]["output_format"] == "png"
    assert refiner[1] == "img2img" and refiner[2]["model"].endswith("refiner.safetensors")
    assert refiner[2]["strength"] == pytest.approx(0.3) and refiner[2]["steps"] == 10
    assert Path(refiner[2]["init_image_path"]).parent.name == base_id  # the base pass's image
    assert refiner[2]["output_format"] == "jpeg" and done["file_type"] == "jpg"
    assert done["output_path"].split("/")[-2] == refiner[0]


@pytest.mark.parametrize(
    ("view", "hires", "expected"),
    [
        ({"status": "queued"}, False, (0.0, "queued")),
        ({"status": "processing", "phase": "loading"}, True, (0.0, "loading")),
        ({"status": "processing", "phase": "sampling", "sampling_pass": 1,
          "current_step": 5, "total_steps": 10}, False, (50.0, "generation")),
        ({"status": "processing", "phase": "sampling", "sampling_pass": 1,
          "current_step": 5, "total_steps": 10}, True, (25.0, "initial generation")),
        ({"status": "processing", "phase": "decoding", "sampling_pass": 1}, True,
         (50.0, "upscaling")),
        # an ESRGAN upscaler reports its tiles through the sampling callback
        ({"status": "processing", "phase": "sampling", "sampling_pass": 1,
          "current_step": 96, "total_steps": 192}, True, (50.0, "upscaling")),
        # the second pass with the same step count as the first: told by the pass, not steps
        ({"status": "processing", "phase": "sampling", "sampling_pass": 2,
          "current_step": 5, "total_steps": 10}, True, (75.0, "upscaling")),
        ({"status": "processing", "phase": "hires", "sampling_pass": 2,
          "current_step": 10, "total_steps": 10}, True, (100.0, "upscaling")),
        ({"status": "completed"}, True, (100.0, "done")),
    ],
)  # fmt: skip
def test_progress_split(view: dict[str, Any], hires: bool, expected: tuple[float, str]) -> None:
    params = {"steps": 10, "hires": {"upscaler": "Latent"} if hires else None}
    assert render.progress(view, params) == expected
