"""Seeds 000 (LightDiffusion-Next) and 001 (Diffusion API) against a real ``sdcpp serve`` with
the synthetic models: each seed's examples verbatim (model names and sizes adapted), batching,
hires with Latent and a real ESRGAN model, the refiner pass, jpg quality, and the error paths."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image

from sdcpp import _safetensors, esrgan_ncnn
from sdcpp.server.dialects.lightdiffusion.render import TELEMETRY_KEYS

from .test_serve import Server

# Seed 001's "Example Request", verbatim but for the model name, the size and the step counts
# (30 + 20 steps take minutes on a loaded 2-core machine).
SEED_001_EXAMPLE = {
    "prompt": "a beautiful green forest with a river and a waterfall",
    "negative_prompt": "blurry, bad quality",
    "steps": 4,
    "cfg_scale": 7.0,
    "width": 64,
    "height": 64,
    "model": "tiny",
    "sampler_name": "DPM++ 2M Karras",
    "fileType": "jpg",
    "jpeg_quality": 85,
    "loras": [{"name": "my-lora", "scale": 0.8}],
    "hires": {
        "enabled": True,
        "scale": 2.0,
        "upscaler": "Latent",
        "steps": 2,
        "denoising_strength": 0.4,
    },
}
SMALL = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2}
TIMEOUT = 600  # seconds for one blocking request: the e2e machine may be heavily loaded


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[Server]:
    """One server for the module: the synthetic checkpoint, a second name for it (the
    refiner), a LoRA named as in seed 001's example, and the packaged Real-ESRGAN models."""
    data = tmp_path_factory.mktemp("seeds") / "data"
    models = data / "models"
    (models / "checkpoints").mkdir(parents=True)
    for name in ("tiny", "refiner"):
        os.link(tiny_path, models / "checkpoints" / f"{name}.safetensors")
    (models / "loras").mkdir()
    rng = np.random.default_rng(0)
    key = "model.diffusion_model.out.2"
    _safetensors.save(
        models / "loras" / "my-lora.safetensors",
        {
            f"{key}.lora_down.weight": (rng.standard_normal((4, 320, 3, 3)) * 0.05).astype(
                np.float16
            ),
            f"{key}.lora_up.weight": (rng.standard_normal((4, 4, 1, 1)) * 0.5).astype(np.float16),
            f"{key}.alpha": np.array(4, np.float16),
        },
    )
    esrgan_ncnn.import_all(models / "esrgan")
    with pytest.MonkeyPatch.context() as env:
        # every request waits for companions: concurrent requests coalesce deterministically
        env.setenv("LD_BATCH_WAIT_SINGLETONS", "1")
        env.setenv("LD_BATCH_TIMEOUT", "2")
        env.setenv("LD_SERVER_LOGLEVEL", "INFO")
        srv = Server(data).start()
    try:
        yield srv
    finally:
        srv.stop()


def generate(srv: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/generate", json=body, timeout=TIMEOUT)


def poll(srv: Server, job_id: str, timeout: float = TIMEOUT) -> tuple[dict[str, Any], list[Any]]:
    """Seed 001's /queue/{id} until done or error; every (progress, phase) seen on the way."""
    seen: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = srv.get(f"/queue/{job_id}").json()
        seen.append((body["progress"], body["current_phase"]))
        if body["state"] in ("done", "error"):
            return body, seen
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish")


def test_seed_000_example_and_telemetry(server: Server) -> None:
    # the seed's curl example, the size adapted
    before = server.get("/api/telemetry").json()
    r = generate(
        server,
        {"prompt": "painted nebula over distant mountains", "width": 64, "height": 64,
         "num_images": 1},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["image"])))
    assert image.format == "PNG" and image.size == (64, 64)
    assert "painted nebula" in image.info["parameters"] and "Seed: " in image.info["parameters"]
    tele = server.get("/api/telemetry").json()
    assert list(tele) == [*TELEMETRY_KEYS, "sdcpp"]  # the unit tests check them against the seed
    assert tele["batches_processed"] == before["batches_processed"] + 1
    assert tele["requests_processed"] == before["requests_processed"] + 1
    # the server's default model (the first in the models dir) is the one loaded
    assert tele["loaded_models"] == ["refiner.safetensors"] and tele["loaded_models_count"] == 1
    assert tele["memory_info"]["vram_allocated_mb"] == 0
    assert tele["memory_info"]["system_ram_mb"] > tele["sdcpp"]["server_rss_mb"] > 0
    assert tele["sdcpp"]["worker_rss_mb"] > 0
    assert (server.data_dir / "logs" / "server.log").read_text().count("batch job") >= 2


def test_seed_000_same_signature_requests_are_one_engine_call(server: Server) -> None:
    body = {**SMALL, "prompt": "batched", "num_images": 1, "sampler": "euler", "adetailer": True}
    answers: list[httpx.Response] = []
    before = server.get("/api/telemetry").json()

    def post() -> None:
        answers.append(generate(server, body))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    tele = server.get("/api/telemetry").json()
    counters = ("batches_processed", "items_processed", "requests_processed")
    assert [tele[k] - before[k] for k in counters] == [1, 3, 3]  # one engine call for three
    job_id = tele["sdcpp"]["batch_jobs"][-1]
    assert before["sdcpp"]["batch_jobs"] == tele["sdcpp"]["batch_jobs"][:-1]
    ignored = tele["sdcpp"]["ignored_fields"]["adetailer"]
    assert ignored == before["sdcpp"]["ignored_fields"].get("adetailer", 0) + 3
    listed = _jobs(server.get("/api/queue/status").json())
    assert [j["id"] for j in listed if j["prompt"] == body["prompt"]] == [job_id]
    job = server.get(f"/api/queue/job/{job_id}").json()
    seeds = job["result"]["seeds"]
    assert len(seeds) == 3 and seeds == list(range(seeds[0], seeds[0] + 3))  # consecutive
    got = sorted(int(a.headers["x-sdcpp-seeds"]) for a in answers)
    assert got == seeds  # each request its own seed ...
    for a in answers:  # ... and its own image, carrying that seed
        text = Image.open(io.BytesIO(base64.b64decode(a.json()["image"]))).info["parameters"]
        assert f"Seed: {a.headers['x-sdcpp-seeds']}," in text


def test_seed_000_errors(server: Server) -> None:
    r = generate(server, {"width": 64, "height": 64, "num_images": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "prompt"]
    r = generate(server, {**SMALL, "num_images": 1, "width": 100})  # the spec's size rule: 422,
    assert r.status_code == 422 and "64 or 128" in r.json()["detail"]  # as on every route
    r = generate(server, {**SMALL, "num_images": 1, "sampler": "dpmpp_sde_cfgpp"})
    assert r.status_code == 422 and "euler_ancestral" in r.json()["detail"]


def test_seed_001_example_lists_and_queue(server: Server) -> None:
    assert server.get("/hello").json() == {"ok": True}
    models = server.get("/models").json()
    assert models["status"] == "success"
    assert {m["name"] for m in models["models"]} == {"tiny", "refiner"}
    assert all(m["type"] == "standard" for m in models["models"])  # SD1-family detection
    assert server.get("/loras").json()["loras"] == [{"name": "my-lora", "scale": 1.0}]
    ups = server.get("/upscalers").json()["upscalers"]
    assert ups[0] == {"name": "Latent", "path": "internal"} and len(ups) > 1
    r = server.post("/txt2img", SEED_001_EXAMPLE)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    body, seen = poll(server, r.json()["job_id"])
    assert body["state"] == "done", body
    assert body["payload"]["loras"] == [{"name": "my-lora", "scale": 0.8}]
    assert (body["width"], body["height"]) == (128, 128)  # hires x2
    assert body["file_type"] == "jpg" and body["jpeg_quality"] == 85
    assert base64.b64decode(body["image"])[:3] == b"\xff\xd8\xff"
    assert Path(body["output_path"]).is_file() and body["generation_time_sec"] > 0
    assert body["memory_after_mb"] > 0 and body["memory_before_mb"] > 0  # worker RSS, MiB
    _check_split(seen)


def _check_split(seen: list[tuple[float, str]]) -> None:
    """Hires: the first pass in 0-50, the second in 50-100, never backwards."""
    values = [p for p, _ in seen]
    assert values == sorted(values), seen
    assert all(p <= 50 for p, phase in seen if phase == "initial generation"), seen
    assert all(p >= 50 for p, phase in seen if phase == "upscaling"), seen
    assert seen[-1] == (100.0, "done")


def test_seed_001_hires_with_esrgan_and_jpg_quality(server: Server) -> None:
    listed = [u["name"] for u in server.get("/upscalers").json()["upscalers"]]
    # the packaged 6-block Real-ESRGAN (x4plus_anime_6B): the 23-block x4plus takes minutes
    # per image on a loaded 2-core CPU
    (esrgan,) = [name for name in listed if "anime" in name and "x4" in name][:1]
    hires = {"enabled": True, "scale": 2.0, "upscaler": esrgan, "steps": 2}
    r = server.post("/txt2img", {**SMALL, "hires": hires, "fileType": "png"})
    body, seen = poll(server, r.json()["job_id"])
    assert body["state"] == "done", body
    assert (body["width"], body["height"]) == (128, 128) and body["file_type"] == "png"
    assert base64.b64decode(body["image"])[:4] == b"\x89PNG"
    _check_split(seen)
    sizes = []
    for quality in (20, 95):
        r = server.post("/txt2img", {**SMALL, "seed": 1, "jpeg_quality": quality})
        done, _ = poll(server, r.json()["job_id"])
        assert done["jpeg_quality"] == quality and done["file_type"] == "jpg"
        sizes.append(len(base64.b64decode(done["image"])))
    assert sizes[0] < sizes[1]


def test_seed_001_refiner_pass(server: Server) -> None:
    r = server.post(
        "/txt2img",
        {**SMALL, "prompt": "refined", "refiner_checkpoint": "refiner", "refiner_switch_at": 0.5},
    )
    base_id = r.json()["job_id"]
    body, seen = poll(server, base_id)
    assert body["state"] == "done", body
    assert body["job_id"] == base_id and body["file_type"] == "jpg"
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
    listed = _jobs(server.get("/api/queue/status").json())
    (refiner,) = [j for j in listed if j["type"] == "img2img" and j["prompt"] == "refined"]
    assert refiner["status"] == "completed"
    assert "refiner.safetensors" in str(server.get(f"/api/queue/job/{refiner['id']}").json())


def _jobs(listing: dict[str, Any]) -> list[dict[str, Any]]:
    return list(listing["queue"]["jobs"])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"width": 64}, 422, "prompt"),
        ({**SMALL, "width": 72}, 422, "64 or 128"),  # a multiple of 8, not of 64 (SpecError)
        ({**SMALL, "model": "no-such-model"}, 404, "no-such-model"),
        ({**SMALL, "loras": ["no-such-lora"]}, 404, "no-such-lora"),
        ({**SMALL, "hires": {"enabled": True, "upscaler": "NoSuchESRGAN"}}, 404, "NoSuchESRGAN"),
        ({**SMALL, "refiner_checkpoint": "no-such-refiner"}, 404, "no-such-refiner"),
    ],
)
def test_seed_001_errors(server: Server, body: dict[str, Any], status: int, needle: str) -> None:
    r = server.post("/txt2img", body)
    assert r.status_code == status, r.text
    assert r.json()["status"] == "error" and needle in r.json()["error"]
