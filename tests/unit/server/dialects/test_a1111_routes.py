"""A1111's non-generation routes over the fake engine: /options (per user, model switch),
the lists, /progress, png-info, the extras upscalers, refreshes, memory and cmd-flags."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from a1111_world import (
    API,
    SMALL,
    client_fixture,
    decode,
    engine_fixture,
    in_thread,
    png_b64,
    wait_running,
)
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.parameters import format_parameters

FIXTURES = (client_fixture, engine_fixture)  # ``client`` and ``engine`` (a1111_world)


def get(client: TestClient, path: str) -> Any:
    r = client.get(f"{API}{path}")
    assert r.status_code == 200, r.text
    return r.json()


def test_sd_models_titles_and_lookup(client: TestClient) -> None:
    models = get(client, "/sd-models")
    assert [m["model_name"] for m in models] == ["other", "tiny"]
    tiny = models[1]
    assert tiny["title"] == f"tiny.safetensors [{tiny['hash']}]" and len(tiny["hash"]) == 10
    assert tiny["sha256"].startswith(tiny["hash"]) and tiny["filename"].endswith("tiny.safetensors")
    assert set(tiny) == {"title", "model_name", "hash", "sha256", "filename", "config"}


def test_options_switch_the_model_per_user(client: TestClient, engine: FakeEngine) -> None:
    before = get(client, "/options")
    assert before["sd_model_checkpoint"].startswith("other.safetensors")
    title = get(client, "/sd-models")[1]["title"]
    before["sd_model_checkpoint"] = title  # Open WebUI posts back the whole object it read
    r = client.post(f"{API}/options", json=before)
    assert r.status_code == 200 and r.json() is None
    assert engine.loads and engine.loads[-1]["model"].endswith("tiny.safetensors")
    after = get(client, "/options")
    assert after["sd_model_checkpoint"] == title and after["sd_checkpoint_hash"]
    client.post(f"{API}/txt2img", json={"prompt": "x", **SMALL})
    assert engine.runs[-1][2]["model"].endswith("tiny.safetensors")  # the user's default now
    loads = len(engine.loads)
    client.post(f"{API}/options", json={"sd_model_checkpoint": "tiny"})
    assert len(engine.loads) == loads  # already loaded: no second load


def test_options_refusals_in_a1111_shape(client: TestClient) -> None:
    r = client.post(f"{API}/options", json={"sd_model_checkpoint": "missing.safetensors"})
    assert r.status_code == 404 and set(r.json()) == {"error", "detail", "body", "errors"}
    r = client.post(f"{API}/options", json={"samples_format": "gif"})
    assert r.status_code == 400 and "samples_format" in r.json()["detail"]
    r = client.post(f"{API}/options", json={"jpeg_quality": 500})
    assert r.status_code == 400
    r = client.post(f"{API}/options", json=[1, 2])
    assert r.status_code == 400
    assert client.post(f"{API}/options", json={"some_ui_option": 3}).status_code == 200
    assert get(client, "/options")["some_ui_option"] == 3  # kept and answered back


def test_options_samples_format_reaches_jobs(client: TestClient, engine: FakeEngine) -> None:
    client.post(f"{API}/options", json={"samples_format": "webp", "jpeg_quality": 70})
    client.post(f"{API}/txt2img", json={"prompt": "x", **SMALL})
    p = engine.runs[-1][2]
    assert (p["output_format"], p["output_quality"]) == ("webp", 70)


def test_lists(client: TestClient) -> None:
    assert get(client, "/sd-vae") == [
        {"model_name": "kl.safetensors", "filename": get(client, "/sd-vae")[0]["filename"]}
    ]
    (lora,) = get(client, "/loras")
    assert lora["name"] == "ink" and lora["path"].endswith("ink.safetensors")
    names = [u["name"] for u in get(client, "/upscalers")]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and "RealESRGAN_x4" in names
    modes = [m["name"] for m in get(client, "/latent-upscale-modes")]
    assert modes[0] == "Latent" and "Latent (nearest-exact)" in modes
    assert "bad" in get(client, "/embeddings")["loaded"]
    assert get(client, "/scripts") == {"txt2img": [], "img2img": []}
    samplers = get(client, "/samplers")
    assert {"name": "Euler a", "aliases": ["euler_a", "k_euler_a", "k_euler_ancestral"],
            "options": {}} in samplers  # fmt: skip
    schedulers = {s["name"]: s for s in get(client, "/schedulers")}
    assert schedulers["karras"]["label"] == "Karras" and "automatic" in schedulers
    assert schedulers["align_your_steps"]["aliases"] == ["ays"]


def test_refresh_checkpoints_and_loras(client: TestClient, tmp_path: Path) -> None:
    new = tmp_path / "data" / "models" / "checkpoints" / "fresh.safetensors"
    _safetensors.save(new, {"y": np.zeros(2, np.float16)})
    assert client.post(f"{API}/refresh-checkpoints").json() is None
    assert "fresh" in [m["model_name"] for m in get(client, "/sd-models")]
    assert client.post(f"{API}/refresh-loras").status_code == 200


def test_progress_while_running_with_preview(client: TestClient) -> None:
    thread, _ = in_thread(client.post, f"{API}/txt2img", json={"prompt": "__slow__", **SMALL})
    wait_running(client)
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    # current_image is the worker's latest step preview (the fake engine sends 32x32 frames for
    # steps 1..2, then none): read until the answer and the live preview agree
    deadline = time.monotonic() + 30
    while True:
        body = get(client, "/progress")
        live = jobs.live.get(jobs.current) if jobs.current else None
        shown = body["current_image"]
        if shown and live is not None and live.preview == base64.b64decode(shown):
            break
        assert time.monotonic() < deadline, "current_image never showed the live preview"
        time.sleep(0.02)
    assert set(body["state"]) == {"skipped", "interrupted", "job", "job_count", "job_timestamp",
                                  "job_no", "sampling_step", "sampling_steps"}  # fmt: skip
    assert 0 < body["progress"] <= 1 and body["eta_relative"] >= 0
    assert body["state"]["job_count"] == 1 and len(body["state"]["job_timestamp"]) == 14
    assert decode(body["current_image"]).size == (32, 32)
    assert get(client, "/progress?skip_current_image=true")["current_image"] is None
    client.post(f"{API}/interrupt")
    thread.join(10)
    idle = get(client, "/progress")
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0


def test_png_info_on_own_output(client: TestClient) -> None:
    r = client.post(f"{API}/txt2img", json={"prompt": "a fox", **SMALL})
    image = r.json()["images"][0]
    info = client.post(f"{API}/png-info", json={"image": "data:image/png;base64," + image})
    assert info.status_code == 200
    body = info.json()
    assert body["info"].startswith("a fox") and body["parameters"]["Prompt"] == "a fox"
    assert body["parameters"]["Steps"] == "2"
    text = format_parameters("cat", "dog", {"Steps": 20, "Sampler": "Euler a", "Size": "64x96"})
    jpeg = io.BytesIO()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG", exif=exif.tobytes())
    r = client.post(f"{API}/png-info", json={"image": base64.b64encode(jpeg.getvalue()).decode()})
    params = r.json()["parameters"]
    assert params["Negative prompt"] == "dog"
    assert (params["Size-1"], params["Size-2"]) == ("64", "96")
    empty = client.post(f"{API}/png-info", json={"image": png_b64()}).json()
    assert empty == {"info": "", "items": {}, "parameters": {}}
    assert client.post(f"{API}/png-info", json={"image": "not base64!"}).status_code == 400


def upscaled(client: TestClient, body: dict[str, Any]) -> tuple[int, int]:
    r = client.post(f"{API}/extra-single-image", json=body)
    assert r.status_code == 200, r.text
    size: tuple[int, int] = decode(r.json()["image"]).size
    return size


def test_extra_single_image_resizers_and_esrgan_job(client: TestClient, engine: FakeEngine) -> None:
    image = png_b64((32, 16))
    same = client.post(f"{API}/extra-single-image", json={"image": image}).json()
    assert decode(same["image"]).size == (32, 16) and same["html_info"] == ""  # upscaler None
    body = {"image": image, "upscaler_1": "Lanczos", "upscaling_resize": 3}
    assert upscaled(client, body) == (96, 48)
    body = {"image": image, "upscaler_1": "RealESRGAN_x4", "upscaling_resize": 2}
    r = client.post(f"{API}/extra-single-image", json=body)
    assert r.status_code == 200, r.text
    assert decode(r.json()["image"]).size == (64, 32)  # resized to what was asked
    assert engine.runs[-1][1] == "upscale"  # through the queue's upscale job
    body = {"image": image, "upscaler_1": "Nearest", "resize_mode": 1,
            "upscaling_resize_w": 40, "upscaling_resize_h": 40}  # fmt: skip
    assert upscaled(client, body) == (40, 40)
    body = {"image": image, "upscaler_1": "Lanczos", "upscaler_2": "Nearest",
            "extras_upscaler_2_visibility": 0.5}  # fmt: skip
    assert client.post(f"{API}/extra-single-image", json=body).status_code == 200
    r = client.post(f"{API}/extra-single-image", json={"image": image, "gfpgan_visibility": 1})
    assert r.status_code == 400 and "face restoration" in r.json()["detail"]
    r = client.post(f"{API}/extra-single-image", json={"image": image, "upscaler_1": "LDSR"})
    assert r.status_code == 404


def test_extra_batch_images(client: TestClient) -> None:
    body = {"upscaler_1": "Lanczos", "upscaling_resize": 2,
            "imageList": [{"data": png_b64((8, 8)), "name": "a"},
                          {"data": png_b64((4, 8)), "name": "b"}]}  # fmt: skip
    r = client.post(f"{API}/extra-batch-images", json=body)
    assert [decode(i).size for i in r.json()["images"]] == [(16, 16), (8, 16)]
    assert client.post(f"{API}/extra-batch-images", json={}).status_code == 422


def test_memory_and_cmd_flags_hold_no_secret(client: TestClient) -> None:
    memory = get(client, "/memory")
    assert memory["ram"]["total"] > 0 and "cuda" in memory
    flags = get(client, "/cmd-flags")
    assert flags["api"] is True and flags["api_auth"] is None
    text = json.dumps(flags).lower()
    assert "secret" not in text and "password" not in text
