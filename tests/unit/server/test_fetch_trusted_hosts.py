"""Operator-trusted download hosts (``download_trusted_hosts``): a listed name may resolve to a
private or loopback address; any other name, a redirect to one, and an address literal still
may not. A real loopback HTTP server stands in for the internal image host."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient
from test_images_api import LocalServer, Spy, error_code
from test_images_api import client as client
from test_images_api import engine as engine
from test_images_api import server as server

from sdcpp.server import Settings
from sdcpp.server.fetch import Fetcher
from sdcpp.server.routers.images import _fetcher


def png(size: tuple[int, int] = (12, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def fetcher(spy: Spy, trusted: set[str]) -> Fetcher:
    # the system's own policy (public addresses only), with a resolver that names the test host
    return Fetcher(resolver=spy.resolve, connector=spy.connect, trusted_hosts=frozenset(trusted))


def download(client: TestClient, url: str) -> Any:
    return client.get("/api/image/download", params={"url": url})


def test_a_trusted_name_may_be_private(client: TestClient, server: LocalServer) -> None:
    server.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, png())
    spy = Spy({"images.lan": ["127.0.0.1"]})
    client.app.state.fetcher = fetcher(spy, {"images.lan"})  # type: ignore[attr-defined]
    r = download(client, f"http://images.lan:{server.port}/cat.png")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (12, 8)
    assert server.requests == [("/cat.png", f"images.lan:{server.port}")]


@pytest.mark.parametrize(
    "url",
    [
        "http://other.lan:{port}/cat.png",  # a name not on the list
        "http://127.0.0.1:{port}/cat.png",  # the address itself, not the trusted name
        "http://images.lan.evil.example:{port}/cat.png",  # exact names only
    ],
)
def test_everything_else_stays_refused(client: TestClient, server: LocalServer, url: str) -> None:
    server.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, png())
    spy = Spy({n: ["127.0.0.1"] for n in ("images.lan", "other.lan", "images.lan.evil.example")})
    client.app.state.fetcher = fetcher(spy, {"images.lan"})  # type: ignore[attr-defined]
    r = download(client, url.format(port=server.port))
    assert r.status_code == 400 and error_code(r) == "URL_NOT_ALLOWED"
    assert server.requests == []  # nothing was fetched


def test_a_redirect_from_a_trusted_host_is_checked_again(
    client: TestClient, server: LocalServer
) -> None:
    server.routes["/hop"] = (302, {"Location": f"http://127.0.0.1:{server.port}/x.png"}, b"")
    spy = Spy({"images.lan": ["127.0.0.1"]})
    client.app.state.fetcher = fetcher(spy, {"images.lan"})  # type: ignore[attr-defined]
    r = download(client, f"http://images.lan:{server.port}/hop")
    assert r.status_code == 400 and error_code(r) == "URL_NOT_ALLOWED"
    assert [path for path, _ in server.requests] == ["/hop"]


def test_the_setting_reaches_the_fetcher() -> None:
    env = {"SDCPP_DOWNLOAD_TRUSTED_HOSTS": "Images.LAN., pics.internal"}
    settings = Settings.load(env=env)
    assert settings.download_trusted_hosts == ("Images.LAN.", "pics.internal")

    class State:
        pass

    state = State()
    state.settings = settings  # type: ignore[attr-defined]
    assert _fetcher(state).trusted_hosts == frozenset({"images.lan", "pics.internal"})
