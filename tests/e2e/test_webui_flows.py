"""More of the web UI in a real browser (fixtures: test_webui.py): an A1111 PNG dropped or
pasted offers its settings, keyboard shortcuts through the gallery, filtering the gallery by
model and date, deleting an image, user text shown as text, the queue's cancel and clear, the
polling fallback, the mask editor's eraser/undo/invert/clear and touch, size and seed tools."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from playwright.sync_api import Browser, Page, expect

from .test_webui import (  # noqa: F401  (browser: the fixture)
    DONE,
    UIServer,
    Watched,
    _data_dir,
    _fill_fast,
    _open,
    browser,
    desktop,
    open_mask_editor,
    serving,
)

A1111 = (
    "a castle on a hill, <lora:ink:0.7>\nNegative prompt: ugly, jpeg artifacts\n"
    "Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 424242, "
    'Size: 64x64, Model hash: 0123abcd, Model: tiny, Lora hashes: "ink: 1234", Version: v1.10.1'
)
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@pytest.fixture(scope="module")
def flows_server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    with serving(_data_dir(tmp_path_factory.mktemp("webui-flows"), tiny_path)) as srv:
        yield srv


@pytest.fixture
def fui(browser: Browser, flows_server: UIServer) -> Iterator[Watched]:  # noqa: F811
    with desktop(browser) as w:
        yield w


def _job(server: UIServer, prompt: str, steps: int = 1, wait: bool = True) -> str:
    body = {"prompt": prompt, "width": 64, "height": 64, "steps": steps, "seed": 5}
    job_id = str(httpx.post(f"{server.url}/api/generate/text2img", json=body).json()["job_id"])
    deadline = time.monotonic() + DONE / 1000
    while wait and httpx.get(f"{server.url}/api/queue/job/{job_id}").json()["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    return job_id


def _a1111_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)  # a tEXt chunk, as A1111 writes it
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _hand_over(page: Page, how: str, png: bytes) -> None:
    """Drop the PNG on the drop zone, or paste it, as a browser does (a DataTransfer)."""
    page.evaluate(
        """([how, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'a1111.png', { type: 'image/png' }));
        const event = how === 'drop'
          ? new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true })
          : new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
        (how === 'drop' ? document.querySelector('#image-drop') : document).dispatchEvent(event);
        }""",
        [how, base64.b64encode(png).decode()],
    )


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_an_a1111_png_dropped_or_pasted_offers_its_settings(
    fui: Watched, flows_server: UIServer, how: str
) -> None:
    page = _open(fui, f"{flows_server.url}/ui/")
    page.click("#kind-tabs [data-kind=img2img]")
    _hand_over(page, how, _a1111_png())
    expect(page.locator("#image-drop-text")).to_contain_text("64 \u00d7 64")
    expect(page.locator("#image-reuse")).to_be_visible()
    page.locator("#image-reuse button").click()
    expect(page.locator("#f-prompt")).to_have_value("a castle on a hill, <lora:ink:0.7>")
    expect(page.locator("#f-negative_prompt")).to_have_value("ugly, jpeg artifacts")
    expect(page.locator("#f-steps")).to_have_value("12")
    expect(page.locator("#f-cfg_scale")).to_have_value("6.5")
    expect(page.locator("#f-seed")).to_have_value("424242")
    expect(page.locator("#f-sampling_method")).to_have_value("dpm++2m")  # A1111's display name
    expect(page.locator("#f-scheduler")).to_have_value("karras")
    expect(page.locator("#lora-list li")).to_have_count(1)  # the prompt's LoRA, listed
    assert not fui.errors, fui.errors


def test_gallery_keys_filters_snippets_and_delete(fui: Watched, flows_server: UIServer) -> None:
    first = _job(flows_server, "an old mill by a river")
    _job(flows_server, "a new bridge at night")
    page = _open(fui, f"{flows_server.url}/ui/#gallery")
    thumbs = page.locator("#gallery-grid .thumb")
    expect(thumbs).to_have_count(2)
    page.keyboard.press("ArrowRight")  # opens the newest, then steps
    expect(page.locator("#viewer-title")).to_contain_text("1 / 2")
    expect(page.locator("#viewer-params")).to_contain_text("a new bridge at night")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-title")).to_contain_text("2 / 2")
    expect(page.locator("#viewer-params")).to_contain_text("an old mill by a river")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-title")).to_contain_text("1 / 2")
    page.click("#viewer-code-tabs [data-code=python]")
    expect(page.locator("#viewer-code")).to_contain_text("sdcpp")
    expect(page.locator("#viewer-code")).to_contain_text("a new bridge at night")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    expect(page.locator("#help-dialog")).to_contain_text("Previous / next image")
    page.keyboard.press("Escape")
    # by model: the PNG parameters name it ("Model: tiny")
    page.fill("#gallery-filter", "tiny")
    expect(thumbs).to_have_count(2)
    page.fill("#gallery-filter", "no-such-model")
    expect(thumbs).to_have_count(0)
    page.fill("#gallery-filter", "")
    # by date: two days from now, "last 24 h" holds neither, "last 7 days" both
    page.clock.set_fixed_time(time.time() + 2 * 86400)
    page.select_option("#gallery-age", "1")
    expect(thumbs).to_have_count(0)
    page.select_option("#gallery-age", "7")
    expect(thumbs).to_have_count(2)
    page.select_option("#gallery-age", "0")
    page.get_by_role("button", name="an old mill by a river").click()
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete this job and its images?"
    page.click("#viewer-delete")
    expect(thumbs).to_have_count(1)
    assert httpx.get(f"{flows_server.url}/api/queue/job/{first}").status_code == 404
    assert not fui.errors, fui.errors


def test_user_text_is_shown_as_text_never_run(fui: Watched, flows_server: UIServer) -> None:
    _job(flows_server, HOSTILE)
    page = _open(fui, f"{flows_server.url}/ui/#queue")
    expect(page.locator("#queue-list")).to_contain_text(HOSTILE)
    page.goto(f"{flows_server.url}/ui/#gallery")
    page.get_by_role("button", name=HOSTILE).first.click()
    expect(page.locator("#viewer-params")).to_contain_text(HOSTILE)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x], #main script").count() == 0
    assert not fui.errors, fui.errors


def test_queue_cancels_a_queued_job_and_clears_the_rest(
    fui: Watched, flows_server: UIServer
) -> None:
    page = _open(fui, f"{flows_server.url}/ui/#queue")
    running = _job(flows_server, "the long running one", steps=150, wait=False)
    waiting = [_job(flows_server, f"waiting {n}", steps=150, wait=False) for n in range(3)]
    queue = page.locator("#queue-list")
    expect(queue.locator(f"[data-job='{running}']")).to_contain_text("step", timeout=DONE)
    row = queue.locator(f"[data-job='{waiting[0]}']")
    expect(row).to_contain_text("in line")  # its position
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".badge")).to_have_text("cancelled", timeout=30000)
    page.click("#queue-clear")
    for job_id in waiting[1:]:
        expect(queue.locator(f"[data-job='{job_id}'] .badge")).to_have_text("cancelled")
        status = httpx.get(f"{flows_server.url}/api/queue/job/{job_id}").json()["status"]
        assert status == "cancelled"
    try:
        page.keyboard.press("x")  # the shortcut cancels the running job
        badge = queue.locator(f"[data-job='{running}'] .badge")
        expect(badge).to_have_text("cancelled", timeout=30000)
    finally:  # never leave a 150-step job running for the next tests
        httpx.post(f"{flows_server.url}/api/queue/cancel", json={"job_id": running})
    assert not fui.errors, fui.errors


def test_polling_fallback_carries_a_job_to_its_end(fui: Watched, flows_server: UIServer) -> None:
    page = _open(fui, f"{flows_server.url}/ui/?live=poll")
    expect(page.locator("#status-text")).to_contain_text("updates: polling")
    _fill_fast(page, "followed by polling")
    page.click("#generate")
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    expect(page.locator("#progress-result img")).to_have_count(1)
    assert not fui.errors, fui.errors


def _alpha(page: Page) -> np.ndarray:
    data = page.evaluate(
        """() => { const c = document.querySelector('#mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from(d.filter((_, i) => i % 4 === 3)); }"""
    )
    return np.array(data).reshape(64, 64)


def test_mask_eraser_undo_invert_clear(
    fui: Watched, flows_server: UIServer, tmp_path: Path
) -> None:
    page, canvas = open_mask_editor(fui, flows_server.url, tmp_path)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None

    def line(y: float) -> None:  # across the whole width, at y image pixels
        sy = box["y"] + y * box["height"] / 64
        page.mouse.move(box["x"] + 1, sy)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 1, sy, steps=10)
        page.mouse.up()

    line(32)
    painted = _alpha(page) > 127
    assert painted[32].all() and not painted[2].any()
    page.click("#mask-tools [data-tool=eraser]")
    line(32)
    assert not (_alpha(page) > 127)[32].any()  # erased
    page.click("#mask-undo")
    assert ((_alpha(page) > 127) == painted).all()  # the eraser's stroke undone
    page.click("#mask-invert")
    inverted = _alpha(page) > 127
    assert (inverted == ~painted).all()
    page.click("#mask-clear")
    assert not (_alpha(page) > 0).any()
    page.click("#mask-undo")
    assert ((_alpha(page) > 127) == inverted).all()
    assert not fui.errors, fui.errors


def test_mask_takes_touch(browser: Browser, flows_server: UIServer, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 375, "height": 812}, has_touch=True)
    try:
        w = Watched(context)
        page, canvas = open_mask_editor(w, flows_server.url, tmp_path)
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        page.touchscreen.tap(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
        alpha = _alpha(page)
        ys, xs = np.nonzero(alpha > 127)
        assert len(xs) and abs(xs.mean() - 48) <= 1.5 and abs(ys.mean() - 16) <= 1.5
        assert not w.errors, w.errors
    finally:
        context.close()


def test_size_swap_aspect_lock_and_seed_tools(fui: Watched, flows_server: UIServer) -> None:
    page = _open(fui, f"{flows_server.url}/ui/")
    page.fill("#f-width", "512")
    page.fill("#f-height", "256")
    page.click("#size-swap")
    expect(page.locator("#f-width")).to_have_value("256")
    expect(page.locator("#f-height")).to_have_value("512")
    page.check("#size-lock")
    page.fill("#f-width", "128")
    page.locator("#f-width").dispatch_event("change")
    expect(page.locator("#f-height")).to_have_value("256")  # 1:2 kept
    page.click("#seed-reuse")  # nothing generated yet: a note, the field stays
    expect(page.locator("#toasts")).to_contain_text("No seed yet")
    page.uncheck("#size-lock")  # 64 x 64 next, not 1:2
    _fill_fast(page, "a seed to reuse")  # seed 7, not locked: the next job gets a new one
    page.click("#generate")
    expect(page.locator("#f-seed")).to_have_value("", timeout=30000)
    expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
    page.click("#seed-reuse")
    expect(page.locator("#f-seed")).to_have_value("7")  # the seed the last job used
    page.check("#seed-lock")
    with page.expect_request("**/api/generate/text2img") as request:
        page.click("#generate")
    assert request.value.post_data_json["seed"] == 7
    expect(page.locator("#f-seed")).to_have_value("7")  # locked: kept for the next job
    page.click("#seed-random")
    expect(page.locator("#f-seed")).to_have_value("")
    assert not fui.errors, fui.errors
