"""The web UI with ``--auth jwt,api-key`` in a real browser: the login form, the HttpOnly
session cookie, live updates over WebSocket and SSE while signed in, the account page, and
logout (see test_webui.py for the server and browser fixtures)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from .test_webui import (  # noqa: F401  (browser: the fixture)
    DONE,
    UIServer,
    Watched,
    _data_dir,
    _fill_fast,
    _shots_dir,
    browser,
)

PASSWORD = "web-ui-Pass-1"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, tiny_path: Path) -> Iterator[UIServer]:
    data = _data_dir(tmp_path_factory.mktemp("webui-auth"), tiny_path)
    script = shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))
    for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin")):
        command = [script, "users", "add", name, "--role", role, "--data-dir", str(data)]
        subprocess.run(
            [*command, "--password-stdin"],
            input=f"{PASSWORD}\n".encode(),
            check=True,
        )
    srv = UIServer(data, "--auth", "jwt,api-key")
    try:
        yield srv
    finally:
        srv.stop()


def test_login_live_updates_and_logout_with_auth_on(
    browser: Browser,  # noqa: F811  (the fixture)
    auth_server: UIServer,
) -> None:
    for live in ("websocket", "sse"):
        context = browser.new_context()
        try:
            page = context.new_page()
            query = "?live=sse" if live == "sse" else ""
            page.goto(f"{auth_server.url}/ui/{query}")
            expect(page.locator("#login-dialog")).to_be_visible()
            page.fill("#login-username", "alice")
            page.fill("#login-password", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready=true]", timeout=20000)
            expect(page.locator("#user-name")).to_contain_text("alice")
            expect(page.locator("#status-text")).to_contain_text(f"updates: {live}")
            cookie = next(c for c in context.cookies() if c["name"] == "sdcpp_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""  # scripts never see the token
            _fill_fast(page, f"signed in over {live}")
            page.click("#generate")
            # the live road (not a poll) carries the progress: it is the only road open
            expect(page.locator("#progress-text")).to_contain_text("completed", timeout=DONE)
            expect(page.locator("#progress-result img")).to_have_count(1)
            if live == "websocket":  # the account page: an API key, shown once, then listed
                page.click("#nav-account")
                page.fill("#key-name", "from the browser")
                page.click("#key-form button[type=submit]")
                expect(page.locator("#key-new")).to_contain_text("sdk_", timeout=10000)
                expect(page.locator("#keys-body")).to_contain_text("from the browser")
                key = page.locator("#key-new").inner_text()
                me = httpx.get(f"{auth_server.url}/api/auth/me", headers={"X-API-Key": key})
                assert me.json()["user"]["username"] == "alice"
                page.screenshot(path=str(_shots_dir() / "account-light-desktop.png"))
            expect(page.locator("#gallery-grid li")).not_to_have_count(0)
            page.click("#logout")
            expect(page.locator("#login-dialog")).to_be_visible()
            expect(page.locator("#gallery-grid li")).to_have_count(0)  # none of alice's stays
            assert not [c for c in context.cookies() if c["name"] == "sdcpp_session"]
            page.reload()
            expect(page.locator("#login-dialog")).to_be_visible()  # signed out for good
        finally:
            context.close()


def _generate_as(server: UIServer, username: str, prompt: str) -> None:
    login = httpx.post(
        f"{server.url}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    body = {"prompt": prompt, "width": 64, "height": 64, "steps": 1}
    job_id = httpx.post(f"{server.url}/api/generate/text2img", json=body, headers=headers).json()[
        "job_id"
    ]
    deadline = time.monotonic() + DONE / 1000
    url = f"{server.url}/api/queue/job/{job_id}"
    while httpx.get(url, headers=headers).json()["status"] != "completed":
        assert time.monotonic() < deadline, "the job did not complete"
        time.sleep(0.2)


def test_each_user_sees_only_their_own_gallery(
    browser: Browser,  # noqa: F811  (the fixture)
    auth_server: UIServer,
) -> None:
    _generate_as(auth_server, "alice", "alice's own lighthouse")
    _generate_as(auth_server, "bob", "bob's private harbour")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{auth_server.url}/ui/#gallery")
        page.fill("#login-username", "alice")
        page.fill("#login-password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("body[data-ready=true]", timeout=20000)
        grid = page.locator("#gallery-grid")
        expect(grid.locator(".thumb", has=page.locator("img"))).not_to_have_count(0)
        expect(grid.get_by_role("button", name="alice's own lighthouse")).not_to_have_count(0)
        expect(grid.get_by_role("button", name="bob's private harbour")).to_have_count(0)
        page.goto(f"{auth_server.url}/ui/#queue")
        expect(page.locator("#queue-list")).to_contain_text("alice's own lighthouse")
        expect(page.locator("#queue-list")).not_to_contain_text("bob's private harbour")
    finally:
        context.close()


def _sign_in(page: Page, url: str, username: str, w: Watched | None = None) -> None:
    if page.url != url:
        page.goto(url)
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=20000)
    if w is not None:  # signed out, the page asked who it is (401) and nothing else failed
        probe = f"401 {url.split('/ui/')[0]}/api/auth/me"
        assert [e for e in w.errors if "status of 401" not in e] == [probe], w.errors
        w.errors.clear()


def test_admins_manage_users_and_users_see_no_admin_controls(
    browser: Browser,  # noqa: F811  (the fixture)
    auth_server: UIServer,
) -> None:
    context = browser.new_context()
    try:
        w = Watched(context)
        page = w.page
        _sign_in(page, f"{auth_server.url}/ui/#account", "root", w)
        expect(page.locator("#users-panel")).to_be_visible()
        expect(page.locator("#users-body")).to_contain_text("alice")
        page.fill("#user-new-name", "carol")
        page.fill("#user-new-password", PASSWORD)
        page.click("#user-form button[type=submit]")
        carol = page.locator("#users-body tr", has_text="carol")
        expect(carol).to_contain_text("active")
        carol.get_by_role("button", name="Disable").click()
        expect(carol).to_contain_text("disabled")
        login = {"username": "carol", "password": PASSWORD}
        assert httpx.post(f"{auth_server.url}/api/auth/login", json=login).status_code == 401
        carol.get_by_role("button", name="Enable").click()
        expect(carol).to_contain_text("active")
        assert httpx.post(f"{auth_server.url}/api/auth/login", json=login).status_code == 200
        page.goto(f"{auth_server.url}/ui/#models")
        expect(page.locator("#upload-form")).to_be_visible()
        expect(page.locator("#models-refresh")).to_be_visible()
        assert not w.errors, w.errors
    finally:
        context.close()
    context = browser.new_context()
    try:
        w = Watched(context)
        page = w.page
        _sign_in(page, f"{auth_server.url}/ui/#account", "carol", w)
        expect(page.locator("#page-account h2", has_text="API keys")).to_be_visible()
        expect(page.locator("#users-panel")).to_be_hidden()
        page.goto(f"{auth_server.url}/ui/#models")
        expect(page.locator("#models-body tr", has_text="tiny")).to_be_visible()
        expect(page.locator("#upload-form")).to_be_hidden()
        expect(page.locator("#models-refresh")).to_be_hidden()
        # no load/unload/convert; the requirements check is a user's (the API allows it)
        buttons = page.locator("#models-body button:visible")
        expect(buttons).to_have_text(["Check"])
        buttons.click()
        expect(page.locator("#models-body tr", has_text="tiny")).to_contain_text("ok")
        # hidden is not the guard: the API refuses carol's admin calls with the same cookie
        refused = page.evaluate(
            """async () => (await fetch('/api/users', { headers: { 'X-Sdcpp-Client': 'webui' },
                credentials: 'same-origin' })).status"""
        )
        assert refused == 403
        assert w.errors == [f"403 {auth_server.url}/api/users"] or all(
            "403" in e for e in w.errors
        ), w.errors
    finally:
        context.close()


def test_account_page_screenshots_and_phone_width(
    browser: Browser,  # noqa: F811  (the fixture)
    auth_server: UIServer,
) -> None:
    folder = _shots_dir()
    for scheme in ("light", "dark"):
        for device, (width, height) in (("desktop", (1280, 900)), ("phone", (375, 812))):
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            try:
                w = Watched(context)
                page = w.page
                page.goto(f"{auth_server.url}/ui/#account")
                expect(page.locator("#login-dialog")).to_be_visible()
                page.screenshot(path=str(folder / f"login-{scheme}-{device}.png"))
                _sign_in(page, f"{auth_server.url}/ui/#account", "root", w)
                expect(page.locator("#users-body")).to_contain_text("alice")
                wide = page.evaluate(
                    "(e => e.scrollWidth > e.clientWidth)(document.documentElement)"
                )
                assert not wide, f"the account page scrolls sideways at {width}px"
                page.screenshot(path=str(folder / f"account-{scheme}-{device}.png"), full_page=True)
                assert not w.errors, w.errors
            finally:
                context.close()
    print(f"\nscreenshots: {folder}")
