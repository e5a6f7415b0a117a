"""The web UI's static serving (server/webui.py) and the browser session cookie
(auth/session.py): caching by content hash, CSP, the redirect, --no-webui, --webui-dir, and
the cookie's CSRF rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sdcpp import _safetensors
from sdcpp.errors import InvalidArgument
from sdcpp.server import Settings, create_app
from sdcpp.server.auth import accounts
from sdcpp.server.auth import store as auth_store
from sdcpp.server.settings import Settings as SettingsClass
from sdcpp.server.webui import IMMUTABLE, content_hash, find_webui_dir

CHECKOUT_UI = Path(__file__).resolve().parents[3] / "webui"
PASSWORD = "correct horse battery"


def _client(tmp_path: Path, **kw: Any) -> TestClient:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5, **kw)
    if settings.auth_methods != ("none",):
        with auth_store.open_auth_store(settings) as store:
            accounts.add_user(store, "alice", "user", PASSWORD)
    return TestClient(create_app(settings, engine=FakeEngine()))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as c:
        yield c


def _hash(page: str) -> str:
    match = re.search(r'<script type="module" src="/ui/(\w+)/js/main.js">', page)
    assert match, page[:400]
    assert 'href="#gallery"' in page  # page links stay fragments
    return match.group(1)


def test_root_redirects_and_index_is_not_cached(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/"
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert _hash(page.text) == content_hash(CHECKOUT_UI)


def test_assets_under_the_hash_are_immutable_and_typed(client: TestClient) -> None:
    h = _hash(client.get("/ui/").text)
    js = client.get(f"/ui/{h}/js/main.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["cache-control"] == IMMUTABLE
    css = client.get(f"/ui/{h}/css/app.css")
    assert css.headers["content-type"].startswith("text/css")
    stale = client.get("/ui/0123456789abcdef/js/main.js")  # an old page's hash: not for a year
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"


def test_strict_csp_on_every_ui_answer_and_no_inline_code(client: TestClient) -> None:
    page = client.get("/ui/")
    h = _hash(page.text)
    for r in (page, client.get(f"/ui/{h}/js/main.js")):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert "<style" not in html and " style=" not in html  # styles come from app.css only
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script
    assert "innerHTML" not in "".join(p.read_text() for p in CHECKOUT_UI.rglob("*.js"))


def test_every_module_is_preloaded(client: TestClient) -> None:
    page = client.get("/ui/").text
    h = _hash(page)
    for module in sorted((CHECKOUT_UI / "js").glob("*.js")):
        if module.name != "main.js":  # main.js is the entry script itself
            assert f'<link rel="modulepreload" href="/ui/{h}/js/{module.name}">' in page


def test_no_file_outside_the_ui_folder(client: TestClient) -> None:
    h = _hash(client.get("/ui/").text)
    for path in ("../pyproject.toml", "%2e%2e/pyproject.toml", "js/nope.js", "index.html", ""):
        r = client.get(f"/ui/{h}/{path}")
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "NOT_FOUND"


def test_no_webui(tmp_path: Path) -> None:
    with _client(tmp_path, webui=False) as c:
        assert c.get("/ui/").status_code == 404
        assert c.get("/", follow_redirects=False).status_code == 404
        assert c.get("/api/health").status_code == 200
    # the CLI flag: store_const, so Settings.load sees None (not False) when it is absent
    assert SettingsClass.load(cli={"webui": None}, env={}).webui is True
    assert SettingsClass.load(cli={"webui": False}, env={}).webui is False


def test_webui_dir_serves_a_working_copy_uncached(tmp_path: Path) -> None:
    ui = tmp_path / "ui"
    (ui / "js").mkdir(parents=True)
    (ui / "index.html").write_text(
        '<html><head><title>dev</title><script type="module" src="js/main.js"></script>'
        '</head><a href="#gallery">g</a></html>'
    )
    (ui / "js" / "main.js").write_text("export const v = 1;")
    settings = SettingsClass.load(cli={"webui_dir": str(ui)}, env={})
    assert settings.webui_dir == ui
    with _client(tmp_path, webui_dir=ui) as c:
        first = c.get("/ui/")
        assert "<title>dev</title>" in first.text
        h = _hash(first.text)
        js = c.get(f"/ui/{h}/js/main.js")
        assert js.text == "export const v = 1;" and js.headers["cache-control"] == "no-cache"
        (ui / "js" / "main.js").write_text("export const v = 2;")
        h2 = _hash(c.get("/ui/").text)
        assert h2 != h  # an edit shows at the next reload
        assert c.get(f"/ui/{h2}/js/main.js").text == "export const v = 2;"
    with pytest.raises(InvalidArgument, match=r"index\.html"):
        create_app(Settings(data_dir=tmp_path / "d2", webui_dir=tmp_path / "empty"))


def test_the_checkout_ui_is_found() -> None:
    found = find_webui_dir()
    assert found is not None and (found / "index.html").is_file()
    assert find_webui_dir(CHECKOUT_UI) == CHECKOUT_UI


# -- the session cookie ------------------------------------------------------------------------
@pytest.fixture
def auth_client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, auth=("jwt",)) as c:
        yield c


UI = {"X-Sdcpp-Client": "webui"}
JOB = {"prompt": "a cat", "steps": 1, "width": 64, "height": 64}


def _login(c: TestClient) -> str:
    api_client = c.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert api_client.status_code == 200 and "set-cookie" not in api_client.headers
    r = c.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}, headers=UI)
    assert r.status_code == 200, r.text
    header = r.headers["set-cookie"]
    assert "sdcpp_session=" in header and "HttpOnly" in header
    assert "SameSite=strict" in header or "SameSite=Strict" in header
    assert r.cookies["sdcpp_session"] == r.json()["token"]
    return str(r.json()["token"])


def test_cookie_signs_in_reads_sse_and_websocket(auth_client: TestClient) -> None:
    c = auth_client
    assert c.get("/api/auth/me").status_code == 401
    _login(c)  # TestClient keeps the cookie like a browser
    assert c.get("/api/auth/me").json()["user"]["username"] == "alice"
    assert c.get("/api/queue/status").status_code == 200
    origin = {"Origin": "http://testserver"}
    with c.websocket_connect("/ws", headers=origin) as ws:
        assert ws.receive_json()["type"] == "system_update"
    for bad in ({}, {"Origin": "http://evil.example"}):
        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/ws", headers=bad) as ws:
            ws.receive_json()
    # a read from another site's page: the cookie does not count
    r = c.get("/api/auth/me", headers={"Origin": "http://evil.example"})
    assert r.status_code == 401
    r = c.get("/api/auth/me", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 401


def test_cookie_needs_the_ui_header_and_same_origin_to_change_anything(
    auth_client: TestClient,
) -> None:
    c = auth_client
    _login(c)
    # a form post from anywhere (no custom header): anonymous, refused, nothing queued
    r = c.post("/api/generate/text2img", json=JOB)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTH_REQUIRED"
    r = c.post("/api/generate/text2img", json=JOB, headers={**UI, "Origin": "http://evil.example"})
    assert r.status_code == 401
    r = c.post("/api/generate/text2img", json=JOB, headers={**UI, "Sec-Fetch-Site": "same-site"})
    assert r.status_code == 401
    assert c.get("/api/queue/status").json()["queue"]["jobs"] == []
    r = c.post("/api/generate/text2img", json=JOB, headers={**UI, "Origin": "http://testserver"})
    assert r.status_code == 202, r.text


def test_refresh_rotates_and_logout_clears_the_cookie(auth_client: TestClient) -> None:
    c = auth_client
    first = _login(c)
    r = c.post("/api/auth/refresh", headers=UI)
    assert r.status_code == 200
    assert c.cookies["sdcpp_session"] == r.json()["token"] != first
    stale = {"Authorization": f"Bearer {first}"}
    assert c.get("/api/auth/me", headers=stale).status_code == 401  # rotated: revoked
    r = c.post("/api/auth/logout", headers=UI)
    assert r.status_code == 200
    assert 'sdcpp_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert "sdcpp_session" not in c.cookies
    assert c.get("/api/auth/me").status_code == 401


def test_a_header_credential_wins_over_the_cookie(auth_client: TestClient) -> None:
    c = auth_client
    _login(c)
    r = c.get("/api/auth/me", headers={"Authorization": "Bearer not-a-valid-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_CREDENTIALS"
