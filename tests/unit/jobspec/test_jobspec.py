"""The job spec: limits, strict codec, and submit_spec planning and LoRA resolution."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.jobspec import ImageSpec, LoraNotFound, LoraRef, SpecError, decode, encode
from sdcpp.jobspec.limits import check, nearest_sides
from sdcpp.options import CacheOptions, HiresFix
from sdcpp.server import Settings, create_app


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_codec_round_trip_keeps_every_structured_field() -> None:
    spec = ImageSpec(
        prompt="a cat",
        width=512,
        seed=7,
        loras=(LoraRef(name="style", weight=0.8),),
        cache=CacheOptions(mode="easycache", settings={"reuse_threshold": 0.2}),
        hires=HiresFix(scale=2.0, steps=10),
        init_image=_png(),
    )
    data = encode(spec)
    assert data["v"] == 1 and data["kind"] == "image" and "steps" not in data
    assert decode(data) == spec


@pytest.mark.parametrize(
    "data, message",
    [
        ({"v": 2, "kind": "image", "prompt": "x"}, "version"),
        ({"v": 1, "kind": "image", "prompt": "x", "bogus": 1}, "bogus"),
        ({"v": 1, "kind": "image", "prompt": "x", "loras": [{"nam": "a"}]}, "loras"),
        ({"v": 1, "kind": "image", "prompt": "x", "init_image": {"b64": "!!"}}, "base64"),
    ],
)
def test_decode_is_strict(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        decode(data)


def test_sides_the_engine_would_change_are_refused_with_the_nearest_valid_ones() -> None:
    assert nearest_sides(72) == (64, 128)
    problem = check("width", 72)
    assert problem is not None and "64 or 128" in problem
    with pytest.raises(SpecError, match="64 or 128"):
        ImageSpec(prompt="x", width=72).validate()
    ImageSpec(prompt="x", width=512, height=768).validate()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = tmp_path / "data" / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "loras").mkdir()
    _safetensors.save(models / "checkpoints" / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    _safetensors.save(models / "loras" / "style.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", max_queue=5, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def test_submit_spec_plans_the_model_and_resolves_loras_from_the_default_dir(
    client: TestClient,
) -> None:
    generation = client.app.state.generation  # type: ignore[attr-defined]
    spec = ImageSpec(prompt="a cat", steps=3, loras=(LoraRef(name="style", weight=0.5),))
    job = generation.submit_spec(spec, None)
    assert job.kind == "txt2img"
    assert job.params["model"].endswith("tiny.safetensors")
    assert job.params["steps"] == 3
    assert job.params["lora_dir"].endswith("loras")
    [lora] = job.params["loras"]
    assert lora["path"].endswith("style.safetensors") and lora["multiplier"] == 0.5


def test_submit_spec_refuses_a_missing_lora_before_queuing(client: TestClient) -> None:
    generation = client.app.state.generation  # type: ignore[attr-defined]
    with pytest.raises(LoraNotFound, match="nope"):
        generation.submit_spec(ImageSpec(prompt="x", loras=(LoraRef(name="nope"),)), None)
    assert generation.jobs.store.counts().get("queued", 0) == 0


def test_submit_spec_stores_image_bytes_as_inputs(client: TestClient) -> None:
    generation = client.app.state.generation  # type: ignore[attr-defined]
    job = generation.submit_spec(ImageSpec(prompt="x", init_image=_png(), strength=0.5), None)
    assert job.kind == "img2img"
    assert Path(job.params["init_image_path"]).is_file() and job.params["strength"] == 0.5


def test_text2img_goes_through_the_spec_plan_and_default_lora_dir(client: TestClient) -> None:
    r = client.post("/api/generate/text2img", json={"prompt": "<lora:style:0.7> a cat"})
    assert r.status_code in (200, 202), r.text
    job = client.app.state.jobs.store.get(r.json()["job_id"])  # type: ignore[attr-defined]
    assert job.params["model"].endswith("tiny.safetensors")
    assert job.params["lora_dir"].endswith("loras")  # <lora:..> tags resolve there


def test_text2img_refuses_a_side_the_engine_would_change(client: TestClient) -> None:
    r = client.post("/api/generate/text2img", json={"prompt": "x", "width": 72})
    assert r.status_code == 422  # a validation error like the schema's own
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "64 or 128" in r.text


def test_text2img_structured_loras_resolve_or_404_before_queuing(client: TestClient) -> None:
    body = {"prompt": "x", "loras": [{"name": "style", "weight": 0.6}]}
    r = client.post("/api/generate/text2img", json=body)
    assert r.status_code in (200, 202), r.text
    job = client.app.state.jobs.store.get(r.json()["job_id"])  # type: ignore[attr-defined]
    assert job.params["loras"][0]["multiplier"] == 0.6
    r = client.post("/api/generate/text2img", json={"prompt": "x", "loras": [{"name": "nope"}]})
    assert r.status_code == 404 and "nope" in r.text
