"""The web UI in a real browser (Debian's chromium through Playwright) against a real
``sdcpp serve`` with the synthetic tiny model.

Screenshots of every page, light and dark, desktop and phone, go to ``$SDCPP_SCREENSHOTS``
(default: a temp folder); the path is printed. The first load's bytes and time-to-interactive
are measured and printed (reported, not asserted as timings).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from .test_auth_serve import Serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ("generate", "queue", "gallery", "models")
DONE = 240_000  # ms: a shared CI machine may take seconds per step even for 64x64


class UIServer(Serve):
    """``sdcpp serve`` on a free port with extra flags, once its worker is ready too."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        super().__init__(data_dir, *args)
        deadline = time.monotonic() + 60
        while httpx.get(f"{self.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the worker did not become ready"
            time.sleep(0.2)


def _data_dir(root: Path, tiny_path: Path) -> Path:
    checkpoints = root / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    os.link(tiny_path, checkpoints / "tiny.safetensors")
    return root


@contextlib.contextmanager
def serving(data_dir: Path, *args: str, **env: str) -> Iterator[UIServer]:
    """A ``UIServer`` for the block; ``env``: variables added to the server's environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        srv = UIServer(data_dir, *args)
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def desktop(browser: Browser) -> Iterator[Watched]:
    """A watched page in a fresh 1280x900 browser context, closed after the block."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Watched(context)
    finally:
        context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    with serving(_data_dir(tmp_path_factory.mktemp("webui"), tiny_path)) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed {r.url}"))

        def status(response: Any) -> None:
            # the live preview of a job that ended a moment ago is gone (404): a benign race
            if response.status >= 400 and not preview_gone(response):
                self.errors.append(f"{response.status} {response.url}")

        self.page.on("response", status)

    def _console(self, message: Any) -> None:
        location = (message.location or {}).get("url", "")
        if message.type == "error" and "/preview?" not in location:
            self.errors.append(message.text)


def preview_gone(response: Any) -> bool:
    return bool(response.status == 404 and "/preview?" in response.url)


@pytest.fixture
def ui(browser: Browser, server: UIServer) -> Iterator[Watched]:
    with desktop(browser) as w:
        yield w


def _open(w: Watched, url: str) -> Page:
    w.page.goto(url)
    w.page.wait_for_selector("body[data-ready=true]", timeout=20000)
    return w.page


def _fill_fast(page: Page, prompt: str, steps: int = 2) -> None:
    page.fill("#f-prompt", prompt)
    page.fill("#f-width", "64")
    page.fill("#f-height", "64")
    page.fill("#f-steps", str(steps))
    page.fill("#f-seed", "7")


def _shots_dir() -> Path:
    folder = Path(os.environ.get("SDCPP_SCREENSHOTS") or tempfile.mkdtemp(prefix="sdcpp-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_first_load_is_clean_small_and_fast(ui: Watched, server: UIServer) -> None:
    sizes: list[int] = []
    ui.page.on("response", lambda r: sizes.append(len(r.body())) if r.ok else None)
    started = time.perf_counter()
    page = _open(ui, f"{server.url}/")  # the redirect to /ui/ included
    interactive = (time.perf_counter() - started) * 1000
    assert page.url == f"{server.url}/ui/"
    expect(page.locator("#f-model_name option")).not_to_have_count(0)
    assert page.locator("#f-sampling_method option").count() > 3  # from /api/samplers
    assert page.get_attribute("#f-steps", "max") == "150"  # from /api/parameters
    assert not ui.errors, ui.errors
    total = sum(sizes)
    ready = page.evaluate("performance.getEntriesByName('sdcpp-ready')[0].startTime")
    print(f"\ntime to interactive (navigation start to ready, /ui/ itself): {ready:.0f} ms")
    print(f"\nfirst load of /ui/: {total} bytes, {len(sizes)} responses, {interactive:.0f} ms")
    assert total <= 150 * 1024


def test_generate_shows_progress_then_the_image_in_the_gallery(
    ui: Watched, server: UIServer
) -> None:
    page = _open(ui, f"{server.url}/ui/")
    expect(page.locator("#status-text")).to_contain_text("updates: websocket")
    _fill_fast(page, "a red fox in the snow", steps=3)
    page.click("#generate")
    expect(page.locator("#progress-panel")).to_be_visible()
    expect(page.locator("#progress-text")).to_contain_text("step", timeout=DONE)
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    assert page.locator("#progress-bar").evaluate("e => e.value") == 1
    expect(page.locator("#progress-result img")).to_have_count(1)
    page.click("nav a[data-page=gallery]")
    thumb = page.locator("#gallery-grid .thumb").first
    expect(thumb).to_be_visible()
    thumb.click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-params")).to_contain_text("a red fox in the snow")
    expect(page.locator("#viewer-code")).to_contain_text("curl -s")
    page.click("#viewer-code-tabs [data-code=openai]")
    expect(page.locator("#viewer-code")).to_contain_text("client.images.generate(")
    assert not ui.errors, ui.errors


def test_reuse_settings_from_a_gallery_image(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/")
    _fill_fast(page, "a lighthouse, reuse me")
    page.fill("#f-negative_prompt", "fog")
    page.click("#generate")
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    page.reload()  # the gallery comes from the server, not from this page's memory
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#f-prompt", "")
    page.goto(f"{server.url}/ui/#gallery")
    page.locator("#gallery-filter").fill("no such words anywhere")
    expect(page.locator("#gallery-grid .thumb")).to_have_count(0)
    page.locator("#gallery-filter").fill("reuse me")
    expect(page.locator("#gallery-grid .thumb")).to_have_count(1)
    with page.expect_download() as download:  # the filtered images, zipped in the page
        page.click("#gallery-zip")
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.testzip() is None
        (name,) = archive.namelist()
        assert archive.read(name)[:8] == b"\x89PNG\r\n\x1a\n"
    page.locator("#gallery-grid .thumb").first.click()
    page.click("#viewer-reuse")
    expect(page.locator("#f-prompt")).to_have_value("a lighthouse, reuse me")
    expect(page.locator("#f-negative_prompt")).to_have_value("fog")
    expect(page.locator("#f-seed")).to_have_value("7")
    expect(page.locator("#f-width")).to_have_value("64")
    assert not ui.errors, ui.errors


def test_a_dropped_sdcpp_png_offers_its_settings(
    ui: Watched, server: UIServer, tmp_path: Path
) -> None:
    job = {"prompt": "a png that remembers", "negative_prompt": "noise", "width": 64}
    job_id = httpx.post(
        f"{server.url}/api/generate/text2img", json={**job, "height": 64, "steps": 1, "seed": 11}
    ).json()["job_id"]
    deadline = time.monotonic() + DONE / 1000
    while (view := httpx.get(f"{server.url}/api/queue/job/{job_id}").json())["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    png = tmp_path / "made-by-sdcpp.png"
    png.write_bytes(httpx.get(f"{server.url}{view['outputs'][0]}").content)
    page = _open(ui, f"{server.url}/ui/")
    page.click("#kind-tabs [data-kind=img2img]")
    page.set_input_files("#image-file", str(png))
    expect(page.locator("#image-reuse")).to_be_visible()
    page.locator("#image-reuse button").click()
    expect(page.locator("#f-prompt")).to_have_value("a png that remembers")
    expect(page.locator("#f-negative_prompt")).to_have_value("noise")
    expect(page.locator("#f-seed")).to_have_value("11")
    assert not ui.errors, ui.errors


def test_cancel_a_running_job(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/")
    _fill_fast(page, "a long one", steps=150)
    page.click("#generate")
    expect(page.locator("#progress-text")).to_contain_text("step", timeout=DONE)
    page.click("#cancel")
    expect(page.locator("#progress-text")).to_contain_text("cancelled", timeout=30000)
    assert not ui.errors, ui.errors


def test_keyboard_only_generate(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/")
    page.keyboard.press("g")  # focuses the prompt
    page.keyboard.type("typed with keys only")
    for field, value in (("#f-width", "64"), ("#f-height", "64"), ("#f-steps", "2")):
        page.focus(field)  # stands in for Tab presses; the next step is keys only
        page.keyboard.press("Control+a")
        page.keyboard.type(value)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    page.keyboard.press("Escape")  # leaves the field: single keys are shortcuts again
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    assert not ui.errors, ui.errors


def open_mask_editor(w: Watched, url: str, tmp_path: Path) -> tuple[Page, Any]:
    """The inpainting tab with a 64x64 source image: the page and its mask canvas."""
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (40, 90, 160)).save(source)
    page = _open(w, f"{url}/ui/")
    page.click("#kind-tabs [data-kind=inpainting]")
    page.set_input_files("#image-file", str(source))
    canvas = page.locator("#mask-canvas")
    expect(canvas).to_have_attribute("width", "64")
    return page, canvas


def test_inpainting_mask_matches_the_stroke(ui: Watched, server: UIServer, tmp_path: Path) -> None:
    page, canvas = open_mask_editor(ui, server.url, tmp_path)
    page.focus("#mask-size")
    page.keyboard.press("Home")  # keyboard: the smallest brush, then back up to 32 screen px
    expect(page.locator("#mask-size-value")).to_have_text("2")
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#mask-size-value")).to_have_text("32")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # measured after the focus above may have scrolled the page
    assert box is not None
    scale = 64 / box["width"]  # image pixels per screen pixel
    # a horizontal stroke across the middle of the left half
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=8)
    page.mouse.up()
    _fill_fast(page, "repaint the stripe")
    with page.expect_request("**/api/generate/inpainting") as req:
        page.click("#generate")
    body = req.value.post_data_json
    mask = Image.open(io.BytesIO(_b64(body["mask_image"]))).convert("L")
    assert mask.size == (64, 64)
    assert mask.getpixel((16, 32)) > 200  # on the stroke: repaint
    assert mask.getpixel((48, 32)) < 50 and mask.getpixel((16, 8)) < 50  # elsewhere: keep
    # the painted box is the stroke: from its start to its end, brush-wide, round caps
    left, top, right, bottom = mask.point(lambda v: 255 if v > 127 else 0).getbbox() or (0,) * 4
    half = 16 * scale
    end = 0.45 * 64
    assert left == 0 and abs(right - (end + half)) <= 2, (left, right)
    assert abs(top - (32 - half)) <= 1.5 and abs(bottom - (32 + half)) <= 1.5, (top, bottom)
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    assert not ui.errors, ui.errors


def _b64(data_url: str) -> bytes:
    import base64

    return base64.b64decode(data_url.split(",", 1)[1])


def test_dark_theme_and_phone_width_and_screenshots(browser: Browser, server: UIServer) -> None:
    folder = _shots_dir()
    for scheme in ("light", "dark"):
        for device, viewport in (("desktop", (1280, 900)), ("phone", (375, 812))):
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=scheme
            )
            try:
                w = Watched(context)
                page = _open(w, f"{server.url}/ui/")
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == "rgb(17, 19, 24)") == (scheme == "dark"), background
                for name in PAGES:
                    page.goto(f"{server.url}/ui/#{name}")
                    page.wait_for_timeout(150)
                    wide = page.evaluate(
                        "(e => e.scrollWidth > e.clientWidth)(document.documentElement)"
                    )
                    assert not wide, f"{name} scrolls sideways at {viewport}"
                    page.screenshot(
                        path=str(folder / f"{name}-{scheme}-{device}.png"), full_page=True
                    )
                assert not w.errors, w.errors
            finally:
                context.close()
    print(f"\nscreenshots: {folder}")


def test_picking_a_model_applies_its_recommended_settings(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/")
    page.fill("#f-steps", "30")
    page.select_option("#f-model_name", index=1)  # tiny: SDXS, one step at cfg 1
    expect(page.locator("#model-note")).to_contain_text("SDXS")
    expect(page.locator("#f-steps")).to_have_value("1")
    expect(page.locator("#f-cfg_scale")).to_have_value("1")
    assert not ui.errors, ui.errors


def test_models_page_loads_and_unloads(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/#models")
    row = page.locator("#models-body tr", has_text="tiny")
    expect(row).to_contain_text("checkpoint")
    row.get_by_role("button", name="Load").click()
    expect(row).to_contain_text("loaded", timeout=DONE)
    row.get_by_role("button", name="Unload").click()
    expect(row.get_by_role("button", name="Load")).to_be_visible(timeout=DONE)
    assert not ui.errors, ui.errors


def test_theme_toggle_overrides_the_system(ui: Watched, server: UIServer) -> None:
    page = _open(ui, f"{server.url}/ui/")
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 19, 24)"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"  # remembered
