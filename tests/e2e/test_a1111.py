"""The AUTOMATIC1111 dialect (``/sdapi/v1``) driven by the real ``webuiapi`` client, and by the
exact requests Open WebUI and SillyTavern send, against a real ``sdcpp serve`` (real worker,
the synthetic tiny model, 64x64, 1-2 steps). One server for the module.

Request shapes reproduced with httpx, read from the projects' sources:

- Open WebUI, ``automatic1111`` engine: ``backend/open_webui/routers/images.py`` at
  open-webui/open-webui commit 02530d501461ce58ab06231d7c2ef2024a141ddf (after v0.7, 2026):
  ``get_image_model`` (GET /options with ``authorization: ''`` when no auth is set),
  ``get_models`` (GET /sd-models, ``id`` = title), ``set_image_model`` (GET /options, then the
  whole object posted back with ``sd_model_checkpoint`` changed), ``image_generations``
  (POST /txt2img ``{prompt, batch_size, width, height, steps, negative_prompt}``, reading
  ``images`` and ``info``). Its image *edit* has no automatic1111 engine (openai, gemini and
  comfyui only), so there is no A1111 edit request to reproduce.
- SillyTavern, ``auto`` source: the server relay ``src/endpoints/stable-diffusion.js`` at
  SillyTavern/SillyTavern commit 02903fdd3ad33dc642fb328e43d0a8b3724e1a38 (``/ping``,
  ``/upscalers`` + ``/latent-upscale-modes``, ``/samplers``, ``/schedulers``, ``/models``,
  ``/vaes``, ``/set-model`` polling /progress until progress 0 and job_count 0, ``/generate``
  reading /options then forwarding the whole client body, ``url``/``auth`` included, with
  ``Authorization: Basic <base64 of auth>``), and the body the 1.12-era client builds in
  ``generateAutoImage`` (``public/scripts/extensions/stable-diffusion/index.js``: sampler,
  scheduler, hires fields, ``hr_additional_modules``, ``override_settings`` with
  ``CLIP_stop_at_last_layers``, ``clip_skip``, ``save_images``/``send_images`` true, ...).
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import webuiapi
from PIL import Image

from sdcpp import esrgan_ncnn

from .test_serve import Server

ESRGAN = "RealESRGAN_x4plus_anime_6B"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("a1111") / "data"
    checkpoints = data / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    os.link(tiny_path, checkpoints / "tiny.safetensors")
    os.link(tiny_path, checkpoints / "tinier.safetensors")  # a second model to switch to
    for path in esrgan_ncnn.import_all(data / "models" / "esrgan"):
        if path.stem != ESRGAN:
            path.unlink()
    srv = Server(data).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: Server) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(host="127.0.0.1", port=server.port, sampler="Euler a", steps=2)


SMALL: dict[str, Any] = {"width": 64, "height": 64, "cfg_scale": 1.0, "steps": 2}


def test_txt2img(api: webuiapi.WebUIApi, server: Server) -> None:
    result = api.txt2img(prompt="a red fox", seed=5, batch_size=2, **SMALL)
    assert len(result.images) == 2 and result.image.size == (64, 64)
    assert result.info["all_seeds"][0] == 5 and len(result.info["infotexts"]) == 2
    assert "a red fox" in result.info["infotexts"][0]
    assert result.parameters["prompt"] == "a red fox"
    assert "txt2img" in json.dumps(server.get("/api/queue/status").json())  # the one queue


def test_img2img_with_a_mask(api: webuiapi.WebUIApi) -> None:
    init = Image.new("RGB", (64, 64), (30, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = api.img2img(
        images=[init], mask_image=mask, prompt="a cat", denoising_strength=0.6, **SMALL
    )
    assert len(result.images) == 1 and result.image.size == (64, 64)
    assert result.parameters["init_images"] is None  # include_init_images false


def test_util_set_model_through_options(api: webuiapi.WebUIApi) -> None:
    names = api.util_get_model_names()
    assert any(n.startswith("tinier.safetensors [") for n in names)
    api.util_set_model("tinier")
    assert api.util_get_current_model().startswith("tinier.safetensors")
    result = api.txt2img(prompt="x", **SMALL)
    assert result.info["sd_model_name"] == "tinier"
    api.util_set_model("tiny.safetensors")


def test_interrupt_a_running_job(api: webuiapi.WebUIApi, server: Server) -> None:
    out: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: out.update(r=api.txt2img(prompt="long", **{**SMALL, "steps": 150})),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 60
    while api.get_progress()["state"]["sampling_step"] < 1:
        assert time.monotonic() < deadline, "the job never started sampling"
        time.sleep(0.05)
    started = time.monotonic()
    assert api.interrupt() == {}
    thread.join(30)
    assert time.monotonic() - started < 30  # within a step (a loaded CI box is slow), not after 150
    result = out["r"]
    assert result.images == [] and result.info["interrupted"] is True
    assert api.get_progress()["state"]["interrupted"] is True
    jobs = server.get("/api/queue/status").json()
    assert "cancelled" in json.dumps(jobs)


def test_png_info_on_our_own_output(api: webuiapi.WebUIApi) -> None:
    image = api.txt2img(prompt="a lighthouse", seed=11, **SMALL).image
    info = api.png_info(image)
    assert isinstance(info.info, str) and info.info.startswith("a lighthouse")
    params = info.json["parameters"]
    assert params["Prompt"] == "a lighthouse" and params["Seed"] == "11"


def test_extra_single_image(api: webuiapi.WebUIApi) -> None:
    source = Image.new("RGB", (32, 32), (200, 60, 20))
    result = api.extra_single_image(source, upscaler_1=ESRGAN, upscaling_resize=2)
    assert result.image.size == (64, 64)
    same = api.extra_single_image(source)  # upscaler_1 "None": the image as it was
    assert same.image.size == (32, 32)


def test_open_webui_automatic1111_engine(server: Server) -> None:
    base = f"{server.url}/sdapi/v1"
    headers = {"authorization": ""}  # get_automatic1111_api_auth() with no auth set
    options = httpx.get(f"{base}/options", headers=headers, timeout=30).json()
    models = [
        {"id": m["title"], "name": m["model_name"]}
        for m in httpx.get(f"{base}/sd-models", headers=headers, timeout=30).json()
    ]
    chosen = next(m["id"] for m in models if m["name"] == "tinier")
    if chosen != options["sd_model_checkpoint"]:
        options["sd_model_checkpoint"] = chosen
        r = httpx.post(f"{base}/options", json=options, headers=headers, timeout=60)
        r.raise_for_status()
    body = {"prompt": "a boat", "batch_size": 1, "width": 64, "height": 64, "steps": 2,
            "negative_prompt": "blurry"}  # fmt: skip
    res = httpx.post(f"{base}/txt2img", json=body, headers=headers, timeout=120).json()
    for image in res["images"]:
        header, _, _ = image.partition(",")  # get_image_data: no comma, so raw base64 PNG
        assert "," not in image and base64.b64decode(header)[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(res["info"])["sd_model_name"] == "tinier"
    options["sd_model_checkpoint"] = next(m["id"] for m in models if m["name"] == "tiny")
    httpx.post(f"{base}/options", json=options, headers=headers, timeout=60).raise_for_status()


def test_sillytavern_auto_source(server: Server) -> None:
    url, auth = server.url, "sd:password"  # with auth off the header is ignored
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    base = f"{url}/sdapi/v1"

    def get(path: str) -> Any:
        r = httpx.get(f"{base}/{path}", headers=headers, timeout=30)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    get("options")  # /ping
    upscalers = [x["name"] for x in get("upscalers")]
    upscalers[1:1] = [x["name"] for x in get("latent-upscale-modes")]
    assert upscalers[0] == "None" and "Latent" in upscalers and ESRGAN in upscalers
    samplers = [x["name"] for x in get("samplers")]
    schedulers = [x["name"] for x in get("schedulers")]
    assert "DDIM" in samplers and "normal" in schedulers
    titles = [x["title"] for x in get("sd-models")]
    assert isinstance(get("sd-vae"), list)
    # /set-model: POST options, then wait for progress 0 and job_count 0
    r = httpx.post(f"{base}/options", json={"sd_model_checkpoint": titles[0]},
                   headers=headers, timeout=60)  # fmt: skip
    assert r.status_code == 200
    progress = get("progress")
    assert progress["progress"] == 0.0 and progress["state"]["job_count"] == 0
    # /generate: reads /options (forge_preset?), then forwards the client's whole body
    assert "forge_preset" not in get("options")
    body = {
        "url": url, "auth": auth, "prompt": "best quality, a knight",
        "negative_prompt": "lowres, bad anatomy", "sampler_name": "DDIM", "scheduler": "normal",
        "steps": 2, "cfg_scale": 1, "width": 64, "height": 64, "restore_faces": False,
        "enable_hr": False, "hr_upscaler": "Latent", "hr_scale": 2.0, "hr_additional_modules": [],
        "denoising_strength": 0.7, "hr_second_pass_steps": 0,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
        "override_settings_restore_afterwards": True, "clip_skip": 1, "save_images": True,
        "send_images": True, "do_not_save_grid": False, "do_not_save_samples": False,
    }  # fmt: skip
    r = httpx.post(f"{base}/txt2img", json=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    data = r.json()
    image = Image.open(io.BytesIO(base64.b64decode(data["images"][0])))
    assert image.size == (64, 64) and "knight" in json.loads(data["info"])["infotexts"][0]
