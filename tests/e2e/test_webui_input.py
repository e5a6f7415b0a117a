"""Ways in for the web UI in a real browser (fixtures: test_webui.py): a trusted pen stroke in
the mask editor, and an image URL imported through the server's safe download: an address that
is not a trusted name is refused unfetched, and the trusted name (``localhost`` here, standing
for an operator's internal image host) is fetched by the server and becomes the source image."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, expect

from .test_webui import (  # noqa: F401  (browser: the fixture)
    UIServer,
    Watched,
    _data_dir,
    _open,
    browser,
    desktop,
    open_mask_editor,
    serving,
)


@pytest.fixture(scope="module")
def input_server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    data = _data_dir(tmp_path_factory.mktemp("webui-input"), tiny_path)
    # the download is off by default; "localhost" stands for an operator's internal image host
    with serving(
        data, SDCPP_ALLOW_IMAGE_DOWNLOAD="1", SDCPP_DOWNLOAD_TRUSTED_HOSTS="localhost"
    ) as srv:
        yield srv


@pytest.fixture
def iui(browser: Browser, input_server: UIServer) -> Iterator[Watched]:  # noqa: F811
    with desktop(browser) as w:
        yield w


def test_mask_takes_a_pen(browser: Browser, input_server: UIServer, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        w = Watched(context)
        page, canvas = open_mask_editor(w, input_server.url, tmp_path)
        page.evaluate(
            "() => { window.__kinds = [];"
            " document.querySelector('#mask-canvas').addEventListener('pointerdown',"
            " (e) => window.__kinds.push(e.pointerType)); }"
        )
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        # a trusted pen stroke, as a tablet sends it (CDP's pointerType "pen")
        cdp = context.new_cdp_session(page)
        y = box["y"] + box["height"] * 0.5
        xs = [box["x"] + box["width"] * f for f in (0.2, 0.4, 0.6, 0.8)]
        pen = {"pointerType": "pen", "button": "left", "force": 0.5}
        cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mousePressed", "x": xs[0], "y": y, "clickCount": 1, "buttons": 1, **pen},
        )
        for x in xs[1:]:
            cdp.send(
                "Input.dispatchMouseEvent",
                {"type": "mouseMoved", "x": x, "y": y, "buttons": 1, **pen},
            )
        cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseReleased", "x": xs[-1], "y": y, "clickCount": 1, "buttons": 0, **pen},
        )
        assert page.evaluate("window.__kinds") == ["pen"]
        alpha = np.array(
            page.evaluate(
                """() => { const c = document.querySelector('#mask-canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return Array.from(d.filter((_, i) => i % 4 === 3)); }"""
            )
        ).reshape(64, 64)
        ys, cols = np.nonzero(alpha > 127)
        assert len(cols) and abs(ys.mean() - 32) <= 1.5  # along the stroke's row
        assert cols.min() <= 14 and cols.max() >= 50  # from 20% to 80% across, brush included
        assert not w.errors, w.errors
    finally:
        context.close()


LOOPBACK_HITS: list[str] = []


class _Images(http.server.BaseHTTPRequestHandler):
    """A loopback image server that counts the requests reaching it."""

    def do_GET(self) -> None:
        LOOPBACK_HITS.append(self.path)
        body = _png(40, 24)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_import_by_url_goes_through_the_servers_safe_download(
    iui: Watched, input_server: UIServer
) -> None:
    images = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    port = images.server_address[1]
    try:
        page = _open(iui, f"{input_server.url}/ui/")
        page.click("#kind-tabs [data-kind=img2img]")
        # an address that is not a trusted name is refused before anything is fetched
        with page.expect_response("**/api/image/download?*") as answer:
            page.fill("#image-url", f"http://127.0.0.1:{port}/cat.png")
            page.click("#image-url-load")
        assert answer.value.status == 400
        expect(page.locator("#toasts .toast.error").last).to_contain_text("non-public address")
        expect(page.locator("#image-preview")).to_be_hidden()
        assert LOOPBACK_HITS == []  # nothing reached the loopback server
        refusals = [e for e in iui.errors if "/api/image/download" in e or "400" in e]
        assert len(refusals) == len(iui.errors), iui.errors
        iui.errors.clear()

        # the trusted name: the real server downloads it, and it becomes the source image
        with page.expect_response("**/api/image/download?*") as answer:
            page.fill("#image-url", f"http://localhost:{port}/cat.png?size=big")
            page.click("#image-url-load")
        assert answer.value.status == 200
        expect(page.locator("#image-drop-text")).to_contain_text("40 \u00d7 24")
        expect(page.locator("#image-preview")).to_be_visible()
        assert LOOPBACK_HITS == ["/cat.png?size=big"]  # fetched once, by the server
        assert not iui.errors, iui.errors
    finally:
        images.shutdown()
        images.server_close()


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 90)).save(out, "PNG")
    return out.getvalue()
