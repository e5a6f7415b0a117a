"""The stored job record: the typed spec (versioned) is what the store keeps, the engine
params are derived from it in one place, and schema-3 rows (plain params dicts) still run."""

from __future__ import annotations

import io
import json
import sqlite3
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
from sdcpp.jobspec import ConvertSpec, ImageSpec, UpscaleSpec, VideoSpec, decode
from sdcpp.server import Settings, create_app
from sdcpp.server.job_record import (
    PLAN_KEY,
    SPEC_ERROR_KEY,
    is_record,
    job_params,
    record,
    stored_spec,
)
from sdcpp.server.store import SCHEMA, SCHEMA_VERSION, JobStore

# the SQLite file itself is under test: not moved to PostgreSQL by SDCPP_TEST_STORE
pytestmark = pytest.mark.usefixtures("own_store")

OLD_ID = "c" * 32


def _models(data: Path) -> Path:
    models = data / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "esrgan").mkdir()
    _safetensors.save(models / "checkpoints" / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    _safetensors.save(models / "esrgan" / "x4.pth", {"x": np.zeros(2, np.float16)})
    return models


def _settings(data: Path) -> Settings:
    return Settings(data_dir=data, max_queue=5, shutdown_grace=0.5)


def _raw_params(database: Path, job_id: str) -> dict[str, Any]:
    with sqlite3.connect(database) as conn:
        (text,) = conn.execute("SELECT params FROM jobs WHERE id = ?", (job_id,)).fetchone()
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30  # only guards against a hang
    while time.monotonic() < deadline:
        view = client.get(f"/api/queue/job/{job_id}").json()
        if view["status"] in ("completed", "failed", "cancelled"):
            return dict(view)
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    _models(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def client(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(data), engine=FakeEngine())) as c:
        yield c


def test_a_schema_3_row_with_plain_params_still_loads_and_runs(data: Path) -> None:
    model = str(data / "models" / "checkpoints" / "tiny.safetensors")
    old = {"prompt": "from before the upgrade", "model": model, "steps": 2, "width": 64}
    old_with_plan = {**old, PLAN_KEY: {"architecture": "SD 1.x"}}
    settings = _settings(data)
    settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.database_path) as conn:  # what a schema-3 server wrote
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO schema_version (version) VALUES (3)")
        conn.execute(
            "INSERT INTO jobs (id, seq, kind, status, params, created_at) "
            "VALUES (?, 1, 'txt2img', 'queued', ?, 1.0)",
            (OLD_ID, json.dumps(old_with_plan)),
        )
    engine = FakeEngine()
    with TestClient(create_app(settings, engine=engine)) as c:
        view = _wait(c, OLD_ID)
        store = c.app.state.jobs.store  # type: ignore[attr-defined]
        assert store.schema_version == SCHEMA_VERSION == 4
    assert view["status"] == "completed", view
    assert view["prompt"] == "from before the upgrade"
    assert view["plan"] == {"architecture": "SD 1.x"}  # shown as before
    [(job_id, kind, sent)] = engine.runs
    assert (job_id, kind, sent) == (OLD_ID, "txt2img", old)  # the plan is not sent on
    assert _raw_params(settings.database_path, OLD_ID) == old_with_plan  # no row rewritten


def test_a_new_job_stores_its_spec_and_the_worker_gets_params_from_it(
    client: TestClient, data: Path
) -> None:
    r = client.post("/api/generate/text2img", json={"prompt": "a cat", "steps": 3})
    assert r.status_code in (200, 202), r.text
    job_id = r.json()["job_id"]
    view = _wait(client, job_id)
    assert view["status"] == "completed"
    stored = _raw_params(_settings(data).database_path, job_id)
    assert is_record(stored) and set(stored) == {"spec", "engine", PLAN_KEY, "model"}
    assert stored["spec"]["v"] == 1 and stored["spec"]["kind"] == "image"
    spec = decode(stored["spec"])
    assert isinstance(spec, ImageSpec) and spec.prompt == "a cat" and spec.steps == 3
    assert stored["engine"]["model"].endswith("tiny.safetensors") == stored["model"].endswith(
        "tiny.safetensors"
    )
    [(_, _, sent)] = client.app.state.engine.runs  # type: ignore[attr-defined]
    assert PLAN_KEY not in sent
    assert sent == {k: v for k, v in job_params(stored).items() if k != PLAN_KEY}
    assert sent["model"] == stored["engine"]["model"] and sent["steps"] == 3
    assert view["plan"] == stored[PLAN_KEY]


def test_an_upscale_is_stored_as_its_spec(client: TestClient, data: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), "red").save(buf, format="PNG")
    generation = client.app.state.generation  # type: ignore[attr-defined]
    job = generation.submit_upscale(UpscaleSpec(image=buf.getvalue(), factor=2), None)
    stored = _raw_params(_settings(data).database_path, job.id)
    spec = stored_spec(stored)
    assert isinstance(spec, UpscaleSpec) and spec.factor == 2 and Path(spec.image).is_file()
    assert stored["engine"] == {"width": 48, "height": 32}
    assert job.params["upscaler"].endswith("x4.pth") and job.params["image_path"] == spec.image
    assert (job.params["width"], job.params["height"]) == (48, 32)


def test_engine_params_come_from_each_kind_of_record() -> None:
    video = record(
        VideoSpec(prompt="waves", model="/m/wan.gguf", video_frames=9, sampler="euler"),
        {"models_dir": "/m"},
    )
    params = job_params(video)
    assert params["model"] == "/m/wan.gguf" == video["model"]
    assert (params["video_frames"], params["sample_method"]) == (9, "euler")
    assert params["models_dir"] == "/m" and params["fps"] == 16.0
    assert "seed" not in params  # random
    convert = record(ConvertSpec(model="sd", quantization_type="q8_0"), {"output": "/m/o.gguf"})
    assert job_params(convert) == {"model_name": "sd", "output": "/m/o.gguf"}
    assert "model" not in convert


def test_a_spec_that_cannot_be_decoded_fails_its_job_not_the_listing() -> None:
    broken = {"spec": {"v": 99, "kind": "image", "prompt": "x"}}
    params = job_params(broken)
    assert list(params) == [SPEC_ERROR_KEY] and "99" in params[SPEC_ERROR_KEY]
    assert job_params({"prompt": "legacy"}) == {"prompt": "legacy"}


def test_the_store_reads_records_and_legacy_rows_alike(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db") as store:
        new = store.create("upscale", record(UpscaleSpec(image="/in/a.png"), {"width": 8}))
        old = store.create("upscale", {"image_path": "/in/b.png", "prompt": ""})
        assert store.get(new.id).params["image_path"] == "/in/a.png"  # type: ignore[union-attr]
        assert store.get(old.id).params == {"image_path": "/in/b.png", "prompt": ""}  # type: ignore[union-attr]


def test_row_params_decode_once_per_row_and_text() -> None:
    """Queue listings decode every queued row on each poll: the derived params are cached per
    (row id, params text), and a changed text (or another row) is decoded afresh."""
    from sdcpp.server.job_record import row_params

    text = json.dumps(record(ImageSpec(prompt="a cat", steps=4), {"model": "/m/a.gguf"}))
    first = row_params("r1", text)
    assert first == job_params(json.loads(text)) and first["steps"] == 4
    assert row_params("r1", text) is first  # the cached decode
    assert row_params("r2", text) is not first  # another row: its own dict
    changed = text.replace('"steps": 4', '"steps": 5')
    assert changed != text and row_params("r1", changed)["steps"] == 5
