"""Conversion with the real engine: POST /api/models/convert -> registered GGUF -> load ->
generate, and a cancel in the middle of a real conversion leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sdcpp.gguf import read_gguf
from sdcpp.registry import ModelRegistry
from sdcpp.server import Settings, conversion, create_app
from sdcpp.server.worker.converter import ConvertRunner


@pytest.fixture
def models(tiny_path: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    (root / "checkpoints").mkdir(parents=True)
    target = root / "checkpoints" / "tiny.safetensors"
    try:
        os.link(tiny_path, target)  # no 880 MB copy where the filesystem allows it
    except OSError:
        shutil.copyfile(tiny_path, target)
    return root


def _wait(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=models.parent, threads=2, shutdown_grace=5)
    with TestClient(create_app(settings)) as c:
        yield c


def test_convert_register_load_generate(client: TestClient, models: Path) -> None:
    r = client.post("/api/models/convert", json={"model_name": "tiny", "quantization_type": "Q8_0"})
    assert r.status_code == 202, r.text
    estimate = r.json()["estimated_bytes"]
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "completed", job
    result = job["result"]
    out = models / "checkpoints/tiny-q8_0.gguf"
    assert result["output_path"] == "checkpoints/tiny-q8_0.gguf"
    assert result["architecture"] == "sdxs" and result["type"] == "checkpoint"
    assert result["size"] == out.stat().st_size <= estimate
    types = {t.type_name for t in read_gguf(out, keep_arrays=False).tensors}
    assert "q8_0" in types
    assert not [p for p in models.rglob(".convert-*")]

    # registered at once: loadable by the id the job reported, then used by a generation
    r = client.post(f"/api/models/{result['model_id']}/load")
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/generate/text2img",
        json={
            "model_name": result["model_id"],
            "prompt": "a lighthouse",
            "width": 64,
            "height": 64,
            "steps": 1,
            "cfg_scale": 1.0,
            "seed": 3,
        },
    )
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "completed", job
    assert job["result"]["load_time"] == 0  # the context the explicit load made


def test_cancel_mid_conversion_leaves_no_file(
    models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child pauses at its first progress report (tensors read, nothing written yet).
    monkeypatch.setenv("SDCPP_TEST_HOOKS", "1")
    monkeypatch.setenv("SDCPP_TEST_CONVERT_HOLD", "60")
    registry = ModelRegistry(models)
    plan = conversion.plan(registry, model_name="tiny", quantization_type="q4_0")
    runner = ConvertRunner(registry)
    job_id = "c" * 32
    events: list[dict[str, Any]] = []
    final: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: final.append(
            runner.run(job_id, "convert", plan.job_params("tiny"), "", events.append)
        )
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not any(e["phase"] == "converting" and e["total"] > 0 for e in events):
        assert time.monotonic() < deadline and thread.is_alive(), events
        time.sleep(0.05)
    staging = conversion.staging_dir(plan.output, job_id)
    assert staging.is_dir()
    assert runner.cancel(job_id)
    thread.join(30)
    assert final and final[0]["type"] == "cancelled", final
    assert not staging.exists() and not plan.output.exists()
    assert sorted(p.name for p in (models / "checkpoints").iterdir()) == ["tiny.safetensors"]
