"""Upscale jobs are planned (``sdcpp.plan.upscaler_plan``) before they are queued: a file
that is no upscaler is a 422 naming what it is, with nothing queued, and the job's JSON shows
the plan it ran with. Models are header-valid files with real ESRGAN / SD 1.x tensor names."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient
from test_detect import CASES, esrgan
from test_plan import put

from sdcpp.server import Settings, create_app


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), "red").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = tmp_path / "data" / "models"
    put(models, "checkpoints/sd15.safetensors", CASES["sd1"]())
    put(models, "esrgan/RealESRGAN_x4.safetensors", esrgan())
    settings = Settings(data_dir=tmp_path / "data", max_queue=5, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def test_a_checkpoint_as_upscaler_is_refused_naming_what_it_is(
    client: TestClient, tmp_path: Path
) -> None:
    r = client.post("/api/generate/upscale", json={"image": _png(), "upscaler": "sd15"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED"
    what = "sd15.safetensors is Stable Diffusion 1.x (checkpoint), not an ESRGAN upscaler"
    assert what in error["message"]
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []  # nothing queued
    inputs = tmp_path / "data" / "inputs"
    assert not inputs.exists() or not any(inputs.rglob("*.png"))  # nor its image stored


@pytest.mark.parametrize(("factor", "defaults"), [(None, {"factor": 4}), (2, {})])
def test_the_upscale_job_shows_the_plan_it_ran_with(
    client: TestClient, factor: int | None, defaults: dict[str, int]
) -> None:
    body = {"image": _png(), "upscaler": "RealESRGAN_x4", "factor": factor}
    r = client.post("/api/generate/upscale", json=body)
    assert r.status_code in (200, 202), r.text
    view = client.get(f"/api/queue/job/{r.json()['job_id']}").json()
    assert view["plan"] == {
        "architecture": "esrgan",
        "name": "ESRGAN x4",
        "model": "RealESRGAN_x4.safetensors",
        "scale": 4,
        "context": {"tile_size": 128},
        "defaults": defaults,
        "notes": [],
    }


def test_the_default_upscaler_is_planned_too(client: TestClient) -> None:
    r = client.post("/api/generate/upscale", json={"image": _png()})
    assert r.status_code in (200, 202), r.text
    job = client.app.state.jobs.store.get(r.json()["job_id"])  # type: ignore[attr-defined]
    assert job.params["upscaler"].endswith("RealESRGAN_x4.safetensors")
    assert job.params["plan"]["architecture"] == "esrgan"
