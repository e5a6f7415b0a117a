"""The rest of the web UI in a real browser (fixtures: test_webui.py): a finished video job
plays in the viewer, an upscale (the real converted Real-ESRGAN), img2img with strength and a
batch as real jobs, the status bar, the lists the form takes from the API, ETA and the live
preview of a running job, missing companions and the requirements check, refresh, viewer zoom
and download."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from sdcpp import _safetensors, esrgan_ncnn
from sdcpp.server.store import JobStore
from sdcpp.server.worker.video import VideoOutput, write_video_outputs

from .test_webui import (  # noqa: F401  (browser: the fixture)
    DONE,
    UIServer,
    Watched,
    _data_dir,
    _fill_fast,
    _open,
    _shots_dir,
    browser,
    desktop,
    open_mask_editor,
    serving,
)

VIDEO_JOB = "0123456789abcdef0123456789abcdef"
MODELS: dict[str, Path] = {}  # server URL -> its models dir
FRAME_COLOURS = [(230, 40, 40), (40, 200, 60), (40, 70, 230), (240, 220, 30)]


def _wan_table() -> dict[str, np.ndarray]:
    """A header-valid Wan 2.1 T2V diffusion model (2 blocks, dim 64): detected as Wan, so the
    plan asks for a Wan VAE and a UMT5-XXL encoder, which this models dir lacks."""
    dim, z = 64, np.zeros
    t = {"patch_embedding.weight": z((dim, 16, 1, 2, 2)), "patch_embedding.bias": z(dim)}
    t |= {"text_embedding.0.weight": z((dim, 4096)), "text_embedding.0.bias": z(dim)}
    for i in range(2):
        t[f"blocks.{i}.cross_attn.norm_k.weight"] = z(dim)
        t[f"blocks.{i}.self_attn.q.weight"] = z((dim, dim))
        t[f"blocks.{i}.self_attn.q.bias"] = z(dim)
    return {k: v.astype(np.float16) for k, v in t.items()}


def _seed_video_job(data: Path) -> None:
    """A completed video job as the worker leaves one: the animation made by the worker's own
    encoder (write_video_outputs) in the job's output folder, and its record in the store.
    The synthetic models cannot make a video in a real server, so it is written before start."""
    frames = [Image.new("RGB", (64, 64), colour) for colour in FRAME_COLOURS]
    names = write_video_outputs(frames, data / "outputs" / VIDEO_JOB, VideoOutput("webp", 4.0))
    with JobStore(data / "sdcpp.db") as store:
        store.create("video", {"prompt": "a spinning top", "video_frames": 4}, job_id=VIDEO_JOB)
        assert store.claim_next("seed") is not None
        result = {"seeds": [1], "parameters": [""] * len(names), "width": 64, "height": 64}
        result |= {"frames": 4, "fps": 4.0, "format": "webp"}
        assert store.finish(VIDEO_JOB, "completed", outputs=names, result=result, worker_id="seed")


@pytest.fixture(scope="module")
def more_server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    data = _data_dir(tmp_path_factory.mktemp("webui-more"), tiny_path)
    (anime,) = [p for p in esrgan_ncnn.import_all(data / "models" / "esrgan") if "anime" in p.name]
    for other in (data / "models" / "esrgan").iterdir():
        if other != anime:
            other.unlink()  # one upscaler: "First available" is the one the test names
    (data / "models" / "diffusion_models").mkdir()
    _safetensors.save(data / "models" / "diffusion_models" / "wan.safetensors", _wan_table())
    _seed_video_job(data)
    with serving(data) as srv:
        MODELS[srv.url] = data / "models"
        yield srv


@pytest.fixture
def mui(browser: Browser, more_server: UIServer) -> Iterator[Watched]:  # noqa: F811
    with desktop(browser) as w:
        yield w


def _source(tmp_path: Path, size: int = 64) -> Path:
    path = tmp_path / "source.png"
    image = Image.new("RGB", (size, size), (30, 60, 160))
    image.paste((250, 200, 40), (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    image.save(path)
    return path


def _generate(page: Page, endpoint: str) -> tuple[dict[str, Any], list[list[int]]]:
    """Press Generate; the request body the page sent and the sizes of the results it shows
    once the job has completed and every result image has loaded."""
    with page.expect_request(f"**/api/generate/{endpoint}") as sent:
        page.click("#generate")
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    page.wait_for_function(
        "() => { const all = [...document.querySelectorAll('#progress-result img')];"
        " return all.length && all.every((i) => i.complete && i.naturalWidth > 0); }"
    )
    sizes = page.eval_on_selector_all(
        "#progress-result img", "els => els.map((e) => [e.naturalWidth, e.naturalHeight])"
    )
    return dict(sent.value.post_data_json), list(sizes)


def test_a_finished_video_plays_in_the_viewer(mui: Watched, more_server: UIServer) -> None:
    page = _open(mui, f"{more_server.url}/ui/#gallery")
    page.fill("#gallery-filter", "a spinning top")
    thumbs = page.locator("#gallery-grid .thumb")
    expect(thumbs).to_have_count(1)  # the animation; its frames (PNGs for scripts) are not shown
    page.wait_for_function(
        "() => { const i = document.querySelector('#gallery-grid .thumb img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    thumbs.first.click()
    expect(page.locator("#viewer-title")).to_contain_text("video")
    media = page.locator("#viewer-media img")
    expect(media).to_have_attribute("src", re.compile(rf"/{VIDEO_JOB}/output/video\.webp$"))
    page.wait_for_function(
        "() => { const i = document.querySelector('#viewer-media img');"
        " return i && i.complete && i.naturalWidth === 64; }"
    )
    # It plays: what the screen shows of it changes while nothing else happens on the page.
    first = media.screenshot()
    deadline = time.monotonic() + 20
    while media.screenshot() == first:
        assert time.monotonic() < deadline, "the animation never moved on from its first frame"
    download = page.locator("#viewer-download")
    assert (download.get_attribute("download") or "").endswith(".webp")
    assert not mui.errors, mui.errors


def test_upscale_with_real_esrgan_from_the_form(
    mui: Watched, more_server: UIServer, tmp_path: Path
) -> None:
    page = _open(mui, f"{more_server.url}/ui/")
    page.click("#kind-tabs [data-kind=upscale]")
    page.select_option("#f-upscaler", label="RealESRGAN_x4plus_anime_6B")
    page.set_input_files("#image-file", str(_source(tmp_path, 32)))
    expect(page.locator("#image-drop-text")).to_contain_text("32 \u00d7 32")
    body, sizes = _generate(page, "upscale")
    assert body["upscaler"] and len(body["image"]) > 100  # the chosen model, the image's bytes
    assert sizes == [[128, 128]]  # 4x
    assert not mui.errors, mui.errors


def test_img2img_strength_and_a_batch_are_real_jobs(
    mui: Watched, more_server: UIServer, tmp_path: Path
) -> None:
    page = _open(mui, f"{more_server.url}/ui/")
    page.click("#kind-tabs [data-kind=img2img]")
    page.set_input_files("#image-file", str(_source(tmp_path)))
    _fill_fast(page, "a yellow square, redrawn", steps=2)
    page.fill("#f-strength", "0.35")
    page.fill("#f-batch_count", "2")
    body, sizes = _generate(page, "img2img")
    assert body["strength"] == 0.35 and body["batch_count"] == 2
    assert sizes == [[64, 64], [64, 64]]
    page.click("nav a[data-page=gallery]")
    page.fill("#gallery-filter", "a yellow square, redrawn")
    expect(page.locator("#gallery-grid .thumb")).to_have_count(2)
    page.locator("#gallery-grid .thumb").first.click()
    expect(page.locator("#viewer-params")).to_contain_text("Denoising strength: 0.35")
    assert not mui.errors, mui.errors


def test_the_viewer_zooms_downloads_one_image_and_is_photographed(
    mui: Watched, more_server: UIServer
) -> None:
    body = {"prompt": "one to download", "width": 64, "height": 64, "steps": 1, "seed": 3}
    job_id = httpx.post(f"{more_server.url}/api/generate/text2img", json=body).json()["job_id"]
    page = _open(mui, f"{more_server.url}/ui/#gallery")
    page.fill("#gallery-filter", "one to download")
    page.locator("#gallery-grid .thumb").first.click(timeout=DONE)
    image = page.locator("#viewer-media img")
    expect(image).not_to_have_class(re.compile("zoomed"))
    before = image.bounding_box()
    image.click()
    expect(image).to_have_class(re.compile("zoomed"))
    after = image.bounding_box()
    assert before and after and after["width"] > before["width"]
    image.click()
    expect(image).not_to_have_class(re.compile("zoomed"))
    with page.expect_download() as download:
        page.click("#viewer-download")
    assert download.value.suggested_filename == f"{job_id}-0.png"
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = _shots_dir()
    page.screenshot(path=str(folder / "viewer-light-desktop.png"))
    page.click("#viewer-close")
    page.click("#theme-toggle")
    page.locator("#gallery-grid .thumb").first.click()
    page.screenshot(path=str(folder / "viewer-dark-desktop.png"))
    print(f"\nviewer screenshots: {folder}")
    assert not mui.errors, mui.errors


def test_status_bar_eta_and_live_preview_of_a_running_job(
    mui: Watched, more_server: UIServer
) -> None:
    page = _open(mui, f"{more_server.url}/ui/")
    status = page.locator("#status-text")
    expect(status).to_have_text(
        re.compile(
            r"worker \w+ · queue 0 · running 0 · models \d loaded / 3 · "
            r"memory [\d.]+ \w+ / [\d.]+ \w+ · updates: websocket"
        )
    )
    _fill_fast(page, "a long one, watched", steps=150)
    page.click("#generate")
    waiting = []
    try:
        expect(page.locator("#progress-text")).to_contain_text("step", timeout=DONE)
        body = {"prompt": "waits in line", "width": 64, "height": 64, "steps": 1}
        waiting = [
            httpx.post(f"{more_server.url}/api/generate/text2img", json=body).json()["job_id"]
            for _ in range(2)
        ]
        expect(status).to_contain_text("queue 2 · running 1", timeout=30000)
        expect(status).to_contain_text("models 1 loaded")
        expect(page.locator("#progress-text")).to_contain_text("ETA", timeout=30000)
        preview = page.locator("#progress-preview")
        expect(preview).to_be_visible(timeout=30000)
        assert re.search(r"/preview\?step=\d+$", preview.get_attribute("src") or "")
    finally:
        for job_id in waiting:
            httpx.post(f"{more_server.url}/api/queue/cancel", json={"job_id": job_id})
        page.click("#cancel")
    expect(page.locator("#progress-text")).to_contain_text("cancelled", timeout=30000)
    expect(status).to_contain_text("queue 0 · running 0", timeout=30000)
    assert not mui.errors, mui.errors


def test_samplers_schedulers_and_cache_modes_come_from_the_api(
    mui: Watched, more_server: UIServer
) -> None:
    params = httpx.get(f"{more_server.url}/api/parameters").json()
    schedulers = httpx.get(f"{more_server.url}/api/schedulers").json()["schedulers"]
    samplers = httpx.get(f"{more_server.url}/api/samplers").json()["samplers"]
    cache = {
        name
        for family in params["cache"].values()
        for name in [*family.get("presets", []), *family.get("modes", [])]
        if name != "off"
    }
    page = _open(mui, f"{more_server.url}/ui/")

    def values(select: str) -> list[str]:
        return list(page.eval_on_selector_all(f"{select} option", "os => os.map((o) => o.value)"))

    assert values("#f-scheduler") == ["", *schedulers]
    assert values("#f-sampling_method") == ["", *samplers]
    assert cache and set(values("#f-cache")) == {"", *cache}
    assert not mui.errors, mui.errors


def _option(page: Page, name: str) -> str:
    """The picker's value for the model whose label starts with ``name``."""
    option = page.locator("#f-model_name option", has_text=re.compile(rf"^{name}\b"))
    return str(option.get_attribute("value"))


def test_missing_companions_requirements_check_and_refresh(
    mui: Watched, more_server: UIServer, tiny_path: Path
) -> None:
    page = _open(mui, f"{more_server.url}/ui/")
    page.select_option("#f-model_name", _option(page, "wan"))
    note = page.locator("#model-note")
    expect(note).to_contain_text("missing: vae, t5xxl")
    page.select_option("#f-model_name", _option(page, "tiny"))
    expect(note).not_to_contain_text("missing")
    page.goto(f"{more_server.url}/ui/#models")
    wan = page.locator("#models-body tr", has_text="wan")
    wan.get_by_role("button", name="Check").click()
    expect(wan).to_contain_text("vae: put a Wan 2.1 VAE")
    tiny = page.locator("#models-body tr", has_text="tiny")
    tiny.get_by_role("button", name="Check").click()
    expect(tiny).to_contain_text("ok")
    # a file dropped into the models dir appears after Refresh, and in the form's picker
    (MODELS[more_server.url] / "checkpoints" / "second.safetensors").hardlink_to(tiny_path)
    expect(page.locator("#models-body tr", has_text="second")).to_have_count(0)
    page.click("#models-refresh")
    expect(page.locator("#models-body tr", has_text="second")).to_have_count(1)
    expect(page.locator("#f-model_name option", has_text="second")).to_have_count(1)
    assert not mui.errors, mui.errors
