"""The web UI's form tools and model operations in a real browser (fixtures: test_webui.py):
presets and prompt templates from seed 002's folders, the ControlNet canny preview (compared
with the engine's own preprocessor), mask zoom, LoRA reorder, model upload and GGUF convert,
and jobs that outlive a server restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, expect

from sdcpp import _safetensors, images

from .test_webui import (  # noqa: F401  (browser: the fixture)
    DONE,
    UIServer,
    Watched,
    _data_dir,
    _open,
    browser,
    desktop,
    open_mask_editor,
    serving,
)


def _seed_folders(models: Path) -> None:
    (models / "presets").mkdir()
    (models / "presets" / "draft.json").write_text(
        json.dumps({"name": "Quick draft", "parameters": {"steps": 3, "cfg_scale": 2.5}})
    )
    (models / "prompts").mkdir()
    (models / "prompts" / "lighthouse.txt").write_text("a lighthouse at dusk")
    (models / "prompts" / "framed.json").write_text(json.dumps({"prompt": "{prompt}, framed"}))
    (models / "neg_prompts").mkdir()
    (models / "neg_prompts" / "common.txt").write_text("blurry, low quality")


@pytest.fixture(scope="module")
def tools_server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    root = _data_dir(tmp_path_factory.mktemp("webui-tools"), tiny_path)
    _seed_folders(root / "models")
    with serving(root) as srv:
        srv.root = root  # type: ignore[attr-defined]
        yield srv


@pytest.fixture
def tui(browser: Browser, tools_server: UIServer) -> Iterator[Watched]:  # noqa: F811
    with desktop(browser) as w:
        yield w


def test_presets_and_templates_fill_the_form_and_the_form_saves_as_a_preset(
    tui: Watched, tools_server: UIServer
) -> None:
    page = _open(tui, f"{tools_server.url}/ui/")
    page.select_option("#preset-pick", label="Quick draft")
    expect(page.locator("#f-steps")).to_have_value("3")
    expect(page.locator("#f-cfg_scale")).to_have_value("2.5")
    page.select_option("#prompt-template", label="lighthouse")
    expect(page.locator("#f-prompt")).to_have_value("a lighthouse at dusk")
    page.select_option("#prompt-template", label="framed")  # {prompt}: what is written
    expect(page.locator("#f-prompt")).to_have_value("a lighthouse at dusk, framed")
    page.select_option("#neg-template", label="common")
    expect(page.locator("#f-negative_prompt")).to_have_value("blurry, low quality")
    page.fill("#f-steps", "7")
    page.click("#preset-save")
    page.fill("#preset-name", "seven steps")
    page.keyboard.press("Enter")  # saves the preset; it does not generate
    expect(page.locator("#preset-pick option", has_text="seven steps")).to_have_count(1)
    saved = json.loads(
        (tools_server.root / "models" / "presets" / "seven steps.json").read_text()  # type: ignore[attr-defined]
    )
    assert saved["parameters"]["steps"] == 7 and "prompt" not in saved["parameters"]
    assert page.locator("#progress-panel").is_hidden()
    page.fill("#f-steps", "1")
    page.select_option("#preset-pick", label="seven steps")
    expect(page.locator("#f-steps")).to_have_value("7")
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete the preset ...?"
    page.get_by_role("button", name="Delete preset seven steps").click()
    expect(page.locator("#preset-pick option", has_text="seven steps")).to_have_count(0)
    assert not (tools_server.root / "models" / "presets" / "seven steps.json").exists()  # type: ignore[attr-defined]
    expect(page.locator("#preset-delete")).to_be_hidden()  # nothing picked now
    expect(page.locator("#preset-pick option", has_text="Quick draft")).to_have_count(1)
    assert not tui.errors, tui.errors


def test_the_canny_preview_is_the_engines_edge_map(
    tui: Watched, tools_server: UIServer, tmp_path: Path
) -> None:
    source = Image.new("RGB", (64, 64), (10, 10, 10))
    ImageDraw.Draw(source).rectangle((16, 20, 44, 48), fill=(240, 240, 240))
    ImageDraw.Draw(source).ellipse((30, 4, 58, 30), fill=(120, 40, 200))
    path = tmp_path / "control.png"
    source.save(path)
    page = _open(tui, f"{tools_server.url}/ui/")
    page.click("#kind-tabs [data-kind=controlnet]")
    page.set_input_files("#image-file", str(path))
    expect(page.locator("#canny-box")).to_be_hidden()
    page.check("#f-canny")
    expect(page.locator("#canny-preview")).to_have_attribute("data-ready", "true")
    shown = page.evaluate(
        """() => { const c = document.querySelector('#canny-preview');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from(d.filter((_, i) => i % 4 === 0)); }"""
    )
    ours = np.array(shown, dtype=np.int16).reshape(64, 64)
    engine = np.asarray(images.canny(source).convert("L"), dtype=np.int16)
    assert (engine > 127).sum() > 40  # the shapes have edges: the comparison means something
    agree = (np.abs(ours - engine) <= 2).mean()
    assert agree >= 0.99, f"{agree:.3f} of the pixels agree with the engine's canny"
    page.uncheck("#f-canny")
    expect(page.locator("#canny-box")).to_be_hidden()
    assert not tui.errors, tui.errors


def test_mask_zoom_keeps_strokes_where_they_are_drawn(
    tui: Watched, tools_server: UIServer, tmp_path: Path
) -> None:
    page, canvas = open_mask_editor(tui, tools_server.url, tmp_path)
    fit = canvas.bounding_box()
    assert fit is not None
    page.click("#mask-zoom-in")
    page.click("#mask-zoom-in")
    expect(page.locator("#mask-zoom-value")).to_have_text("200%")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and abs(box["width"] - 2 * fit["width"]) <= 1
    # a dot at image pixel (12, 12): on screen, through the zoomed size
    x, y = box["x"] + 12 * box["width"] / 64, box["y"] + 12 * box["height"] / 64
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    mask = page.evaluate(
        """() => { const c = document.querySelector('#mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, 64, 64).data;
        return Array.from(d.filter((_, i) => i % 4 === 3)); }"""
    )
    alpha = np.array(mask).reshape(64, 64)
    ys, xs = np.nonzero(alpha > 127)
    assert abs(xs.mean() - 12) <= 1 and abs(ys.mean() - 12) <= 1
    radius = 16 * 64 / box["width"]  # a 32-px brush, in image pixels at 200%
    assert xs.max() - xs.min() <= 2 * radius + 2  # half the size it has at 100%
    page.click("#mask-zoom-reset")
    expect(page.locator("#mask-zoom-value")).to_have_text("100%")
    assert not tui.errors, tui.errors


def test_loras_in_the_prompt_reorder_reweight_and_remove(
    tui: Watched, tools_server: UIServer
) -> None:
    page = _open(tui, f"{tools_server.url}/ui/")
    page.fill("#f-prompt", "a cat <lora:ink:0.8> on a roof <lora:film:0.5>")
    items = page.locator("#lora-list li")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-name", "ink")
    page.get_by_role("button", name="Move film up").click()
    expect(page.locator("#f-prompt")).to_have_value(
        "a cat <lora:film:0.5> on a roof <lora:ink:0.8>"
    )
    expect(items.nth(0)).to_have_attribute("data-name", "film")
    page.get_by_label("LoRA ink weight").fill("1.25")
    page.get_by_label("LoRA ink weight").press("Tab")
    expect(page.locator("#f-prompt")).to_have_value(
        "a cat <lora:film:0.5> on a roof <lora:ink:1.25>"
    )
    page.get_by_role("button", name="Remove film").click()
    expect(page.locator("#f-prompt")).to_have_value("a cat on a roof <lora:ink:1.25>")
    expect(items).to_have_count(1)
    assert not tui.errors, tui.errors


def test_upload_a_model_and_convert_one_to_gguf(
    tui: Watched, tools_server: UIServer, tmp_path: Path
) -> None:
    lora = tmp_path / "uploaded-style.safetensors"
    _safetensors.save(lora, {"lora_unet_x.lora_down.weight": np.zeros((2, 2), np.float16)})
    page = _open(tui, f"{tools_server.url}/ui/#models")
    models = tools_server.root / "models"  # type: ignore[attr-defined]
    encoder = tmp_path / "my-t5.safetensors"
    _safetensors.save(encoder, {"encoder.block.0.weight": np.zeros((2, 2), np.float16)})

    def upload(path: Path, type_: str, subfolder: str | None, overwrite: bool) -> None:
        page.select_option("#upload-type", type_)
        page.set_input_files("#upload-file", str(path))
        if subfolder is None:
            expect(page.locator("#upload-subfolder-field")).to_be_hidden()
        else:  # the API's own choices for this type
            page.select_option("#upload-subfolder", subfolder)
        page.set_checked("#upload-overwrite", overwrite)
        page.click("#upload-form button[type=submit]")

    upload(lora, "lora", None, overwrite=False)
    expect(page.locator("#upload-status")).to_contain_text("Uploaded", timeout=30000)
    expect(page.locator("#models-body tr", has_text="uploaded-style")).to_contain_text("lora")
    assert (models / "loras" / lora.name).exists()
    upload(encoder, "text_encoder", "t5xxl", overwrite=False)
    expect(page.locator("#upload-status")).to_contain_text("Uploaded", timeout=30000)
    placed = models / "text_encoders" / "t5xxl" / encoder.name
    assert placed.read_bytes() == encoder.read_bytes()
    _safetensors.save(encoder, {"encoder.block.1.weight": np.ones((2, 2), np.float16)})
    upload(encoder, "text_encoder", "t5xxl", overwrite=False)  # the same name: refused, kept
    expect(page.locator("#toasts")).to_contain_text("exists", timeout=30000)
    assert placed.read_bytes() != encoder.read_bytes()
    upload(encoder, "text_encoder", "t5xxl", overwrite=True)
    expect(page.locator("#upload-status")).to_contain_text("Uploaded", timeout=30000)
    assert placed.read_bytes() == encoder.read_bytes()  # replaced
    page.get_by_role("button", name="Convert tiny to GGUF").click()
    expect(page.locator("#convert-dialog")).to_be_visible()
    page.select_option("#convert-type", "q8_0")
    page.click("#convert-start")
    expect(page.locator("#convert-status")).to_contain_text("completed", timeout=DONE)
    assert page.locator("#convert-progress").evaluate("e => e.value") == 1
    page.click("#convert-close")
    expect(page.locator("#models-body tr", has_text="tiny-q8_0")).to_have_count(1)
    # the refused second upload (its response and the console's note of it), nothing else
    assert tui.errors and all("409" in e for e in tui.errors), tui.errors


def test_jobs_survive_a_server_restart(browser: Browser, tiny_path: Path, tmp_path: Path) -> None:  # noqa: F811
    root = _data_dir(tmp_path / "restart", tiny_path)
    first = UIServer(root)
    try:
        job = {"prompt": "made before the restart", "width": 64, "height": 64, "steps": 1}
        job_id = httpx.post(f"{first.url}/api/generate/text2img", json=job).json()["job_id"]
        deadline = time.monotonic() + DONE / 1000
        while httpx.get(f"{first.url}/api/queue/job/{job_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.2)
    finally:
        first.stop()
    second = UIServer(root)  # a new process on the same data dir (and another port)
    context = browser.new_context()
    try:
        w = Watched(context)
        page = _open(w, f"{second.url}/ui/#gallery")
        thumb = page.locator("#gallery-grid .thumb")
        expect(thumb).to_have_count(1)
        expect(thumb.first).to_have_attribute("aria-label", "Open image 1: made before the restart")
        thumb.first.click()
        expect(page.locator("#viewer-params")).to_contain_text("made before the restart")
        page.goto(f"{second.url}/ui/#queue")
        expect(page.locator("#queue-list")).to_contain_text("made before the restart")
        assert not w.errors, w.errors
    finally:
        context.close()
        second.stop()
