"""Seed 000 (LightDiffusion-Next) over a fake engine: payload, batching, telemetry, errors."""

from __future__ import annotations

import base64
import io
import logging
import threading
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
from sdcpp.errors import InvalidArgument
from sdcpp.server import Settings, create_app
from sdcpp.server.dialects.lightdiffusion.batcher import BatchSettings
from sdcpp.server.dialects.lightdiffusion.render import TELEMETRY_KEYS

SEED_KEYS = [
    "uptime_seconds", "pending_count", "pending_by_signature", "pending_preview",
    "max_batch_size", "batch_timeout", "batches_processed", "items_processed",
    "requests_processed", "avg_processed_wait_s", "pending_avg_wait_s", "memory_info",
    "loaded_models_count", "loaded_models", "pipeline_import_ok", "pipeline_import_error",
]  # fmt: skip
BASE = {"prompt": "painted nebula over distant mountains", "width": 64, "height": 64}


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def _client(tmp_path: Path, engine: FakeEngine) -> TestClient:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", max_queue=20, shutdown_grace=0.5)
    return TestClient(create_app(settings, engine=engine))


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    with _client(tmp_path, engine) as c:
        yield c


def _png(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    assert image.format == "PNG"
    return image


def _concurrently(client: TestClient, bodies: list[dict[str, Any]]) -> list[Any]:
    answers: list[Any] = [None] * len(bodies)

    def post(i: int) -> None:
        answers[i] = client.post("/api/generate", json=bodies[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.02)  # in order, well inside the batch timeout
    for t in threads:
        t.join(timeout=30)
    return answers


def test_health_and_telemetry_keys(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    body = client.get("/api/telemetry").json()
    assert list(body) == [*SEED_KEYS, "sdcpp"] and list(TELEMETRY_KEYS) == SEED_KEYS
    assert body["max_batch_size"] == 4 and body["batch_timeout"] == 0.5
    assert (
        body["memory_info"]["vram_allocated_mb"] == 0
        and body["memory_info"]["vram_reserved_mb"] == 0
    )
    assert body["memory_info"]["system_ram_mb"] > 0  # this test process's RSS at least
    assert "CPU" in body["sdcpp"]["vram_note"]
    assert body["pipeline_import_ok"] is True and body["pipeline_import_error"] is None
    assert body["pending_count"] == 0 and body["batches_processed"] == 0


def test_single_image_png_with_parameters(client: TestClient, engine: FakeEngine) -> None:
    r = client.post("/api/generate", json={**BASE, "num_images": 1})
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["image"]
    image = _png(r.json()["image"])
    assert image.size == (64, 64) and "nebula" in image.info["parameters"]
    (run,) = engine.runs
    assert run[1] == "txt2img" and run[2]["batch_count"] == 1 and run[2]["steps"] == 20
    assert run[2]["output_format"] == "png"
    job = client.get(f"/api/queue/job/{r.headers['x-sdcpp-job-id']}").json()
    assert job["status"] == "completed"  # an ordinary job in the one queue


def test_several_images_and_field_mapping(client: TestClient, engine: FakeEngine) -> None:
    body = {
        **BASE,
        "num_images": 2,
        "negative_prompt": "blur",
        "steps": 3,
        "guidance_scale": 5.5,
        "seed": 42,
        "sampler": "euler_ancestral",
        "scheduler": "normal",
        "enable_preview": True,
        "hires_fix": True,
        "some_future_ui_key": {"x": 1},
    }
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 2
    params = engine.runs[0][2]
    assert params["sample_method"] == "euler_a" and params["scheduler"] == "discrete"
    assert params["cfg_scale"] == 5.5 and params["seed"] == 42 and params["steps"] == 3
    assert params["negative_prompt"] == "blur" and params["preview"] is True
    assert params["hires"]["upscaler"] == "Latent" and params["hires"]["scale"] == 2.0
    tele = client.get("/api/telemetry").json()
    assert tele["sdcpp"]["unknown_fields"] == {"some_future_ui_key": 1}


def test_no_meaning_fields_are_reported(client: TestClient) -> None:
    body = {**BASE, "num_images": 1, "adetailer": True, "stable_fast": "yes", "batch_size": 2}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200
    assert set(r.headers["x-sdcpp-ignored-fields"].split(",")) == {
        "adetailer", "stable_fast", "batch_size",
    }  # fmt: skip
    ignored = client.get("/api/telemetry").json()["sdcpp"]["ignored_fields"]
    assert ignored == {"adetailer": 1, "stable_fast": 1, "batch_size": 1}


def test_reuse_seed(client: TestClient, engine: FakeEngine) -> None:
    client.post("/api/generate", json={**BASE, "num_images": 1, "seed": 7})
    last = engine.runs[-1]
    client.post("/api/generate", json={**BASE, "num_images": 1, "reuse_seed": True})
    # the fake engine reports seeds 0..n-1: the last one it reported is reused
    assert last[2]["seed"] == 7 and engine.runs[-1][2]["seed"] == 0


def test_img2img(client: TestClient, engine: FakeEngine) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="PNG")
    image = base64.b64encode(buf.getvalue()).decode()
    body = {**BASE, "num_images": 1, "img2img_enabled": True, "img2img_image": image}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    assert engine.runs[-1][1] == "img2img" and Path(engine.runs[-1][2]["init_image_path"]).name
    r = client.post("/api/generate", json={**BASE, "num_images": 1, "img2img_enabled": True})
    # a value the job spec refuses: 422, as the one error table says on every route
    assert r.status_code == 422 and "img2img_image" in r.json()["detail"]
    bad = {**BASE, "num_images": 1, "img2img_enabled": True, "img2img_image": "!!"}
    assert client.post("/api/generate", json=bad).status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"width": 64, "height": 64, "num_images": 1}, 422, "prompt"),
        ({"prompt": "x", "height": 64, "num_images": 1}, 422, "width"),
        ({"prompt": "x", "width": 64, "height": 64}, 422, "num_images"),
        # the job spec's refusals (SpecError): 422 too, their message as the detail
        ({**BASE, "num_images": 1, "width": 65}, 422, "nearest valid: 64 or 128"),
        ({**BASE, "num_images": 1, "sampler": "dpmpp_sde_cfgpp"}, 422, "euler_ancestral"),
        ({**BASE, "num_images": 1, "scheduler": "beta"}, 422, "karras"),
    ],
)
def test_errors_in_fastapi_shape(
    client: TestClient, body: dict[str, Any], status: int, needle: str
) -> None:
    r = client.post("/api/generate", json=body)
    assert r.status_code == status
    detail = r.json()["detail"]
    assert isinstance(detail, list) is (needle in ("prompt", "width", "num_images"))
    if isinstance(detail, list):  # the schema's: FastAPI's list of errors
        assert detail[0]["loc"] == ["body", needle] and detail[0]["msg"]
    else:
        assert needle in detail


def test_bad_json_and_no_model(tmp_path: Path, engine: FakeEngine) -> None:
    settings = Settings(data_dir=tmp_path / "empty", shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=engine)) as c:
        r = c.post("/api/generate", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["detail"]
        r = c.post("/api/generate", json={**BASE, "num_images": 1})
        assert r.status_code == 404 and "model" in r.json()["detail"]


def test_same_signature_requests_become_one_job(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_BATCH_WAIT_SINGLETONS", "1")
    monkeypatch.setenv("LD_BATCH_TIMEOUT", "3")
    with _client(tmp_path, engine) as c:
        answers = _concurrently(c, [{**BASE, "num_images": 1}] * 3)
        assert [a.status_code for a in answers] == [200] * 3
        (run,) = engine.runs  # one engine call for the three requests
        assert run[2]["batch_count"] == 3
        assert sorted(a.headers["x-sdcpp-seeds"] for a in answers) == ["0", "1", "2"]
        colours = {_png(a.json()["image"]).getpixel((0, 0)) for a in answers}
        assert len(colours) == 3  # each request got its own image
        tele = c.get("/api/telemetry").json()
        assert (tele["batches_processed"], tele["items_processed"]) == (1, 3)
        assert tele["requests_processed"] == 3 and tele["sdcpp"]["batch_jobs"] == [run[0]]


def test_batching_limits_seeds_and_signatures(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_BATCH_WAIT_SINGLETONS", "1")
    monkeypatch.setenv("LD_BATCH_TIMEOUT", "4")
    monkeypatch.setenv("LD_MAX_BATCH_SIZE", "2")
    with _client(tmp_path, engine) as c:
        bodies = [
            {**BASE, "num_images": 1, "seed": 10},
            {**BASE, "num_images": 1, "seed": 11},  # lines up with seed 10: joins
            {**BASE, "num_images": 1, "seed": 30},  # does not: its own batch
            {**BASE, "num_images": 1, "prompt": "another prompt"},  # another signature
        ]
        answers = _concurrently(c, bodies)
        assert all(a.status_code == 200 for a in answers)
        runs = sorted((r[2]["seed"], r[2]["batch_count"], r[2]["prompt"]) for r in engine.runs)
        assert [(s, n) for s, n, p in runs if p == BASE["prompt"]] == [(10, 2), (30, 1)]
        assert len(runs) == 3
        assert c.get("/api/telemetry").json()["max_batch_size"] == 2


def test_singletons_go_at_once_by_default(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_BATCH_TIMEOUT", "8")
    with _client(tmp_path, engine) as c:
        started = time.monotonic()
        assert c.post("/api/generate", json={**BASE, "num_images": 1}).status_code == 200
        assert time.monotonic() - started < 6  # not the 8 s LD_BATCH_TIMEOUT


def test_batch_job_is_visible_and_cancellable(client: TestClient) -> None:
    answers = []
    t = threading.Thread(
        target=lambda: answers.append(
            client.post("/api/generate", json={**BASE, "prompt": "__slow__", "num_images": 1})
        )
    )
    t.start()
    deadline = time.monotonic() + 10
    while not (jobs := client.get("/api/telemetry").json()["sdcpp"]["batch_jobs"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    queued = client.get("/api/queue/status").json()
    assert jobs[0] in str(queued)
    assert client.post("/api/queue/cancel", json={"job_id": jobs[0]}).status_code == 200
    t.join(timeout=10)
    assert answers[0].status_code == 409 and "cancelled" in answers[0].json()["detail"]


def test_pending_requests_in_telemetry(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_BATCH_WAIT_SINGLETONS", "1")
    monkeypatch.setenv("LD_BATCH_TIMEOUT", "1.5")
    with _client(tmp_path, engine) as c:
        t = threading.Thread(target=lambda: c.post("/api/generate", json={**BASE, "num_images": 1}))
        t.start()
        deadline = time.monotonic() + 5
        while (tele := c.get("/api/telemetry").json())["pending_count"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (key,) = tele["pending_by_signature"]
        assert BASE["prompt"] in key and tele["pending_by_signature"][key] == 1
        (preview,) = tele["pending_preview"]
        assert preview["prompt_preview"] == "painted nebula over distant mo..."
        assert preview["waiting_s"] >= 0 and len(preview["request_id"]) == 8
        t.join(timeout=10)
        tele = c.get("/api/telemetry").json()
        assert tele["pending_count"] == 0 and tele["avg_processed_wait_s"] >= 1.0


def test_loglevel_writes_the_server_log(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_SERVER_LOGLEVEL", "info")
    with _client(tmp_path, engine) as c:
        c.post("/api/generate", json={**BASE, "num_images": 1})
        log = tmp_path / "data" / "logs" / "server.log"
        text = log.read_text()
        assert "batch job" in text and "DEBUG" not in text
    logger = logging.getLogger("sdcpp.server.dialects.lightdiffusion")
    assert logger.level == logging.INFO


def test_an_ended_app_leaves_no_log_file_behind_in_the_process(
    tmp_path: Path, engine: FakeEngine
) -> None:
    """Two apps one after the other in one process (tests, embedding): the first one's log
    file is detached at its shutdown, so the second app's lines go only into its own file
    and a removed first data dir breaks nothing (schemathesis found the 500 this caused)."""
    first, second = tmp_path / "one", tmp_path / "two"
    with _client(first, engine) as c:
        assert c.post("/api/generate", json={**BASE, "num_images": 1}).status_code == 200
    first_log = first / "data" / "logs" / "server.log"
    before = first_log.read_text()
    logger = logging.getLogger("sdcpp.server.dialects.lightdiffusion")
    assert not [h for h in logger.handlers if str(first) in getattr(h, "baseFilename", "")]
    with _client(second, FakeEngine()) as c:
        assert c.post("/api/generate", json={**BASE, "num_images": 1}).status_code == 200
        assert "batch job" in (second / "data" / "logs" / "server.log").read_text()
    assert "batch job" in before and first_log.read_text() == before


def test_knobs_from_env() -> None:
    assert BatchSettings.from_env({}) == BatchSettings(4, 0.5, False, "DEBUG")
    knobs = {"LD_MAX_BATCH_SIZE": "8", "LD_BATCH_TIMEOUT": "1", "LD_BATCH_WAIT_SINGLETONS": "1"}
    assert BatchSettings.from_env(knobs) == BatchSettings(8, 1.0, True, "DEBUG")
    for bad in ({"LD_MAX_BATCH_SIZE": "0"}, {"LD_BATCH_TIMEOUT": "x"}, {"LD_SERVER_LOGLEVEL": "v"}):
        with pytest.raises(InvalidArgument):
            BatchSettings.from_env(bad)
