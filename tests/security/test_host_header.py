"""Host header and DNS rebinding: a server bound to loopback answers only to loopback names
over TCP (trusted_host.py), so a page whose DNS name was re-pointed at 127.0.0.1 can neither
read the API nor the web UI, nor queue a job; ``allowed_hosts`` names the others."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from attack import Served, assert_error, jobs_in
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

JOB = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
# What a rebinding page sends: its own name, with or without our port; look-alikes of
# loopback names that are not loopback.
FOREIGN = [
    "evil.example",
    "evil.example:{port}",
    "EVIL.example.:{port}",
    "127.0.0.1.evil.example:{port}",
    "localhost.evil.example",
    "localhostx:{port}",
    "[2001:db8::1]:{port}",
    "10.0.0.5:{port}",
]
LOOPBACK = ["localhost:{port}", "127.0.0.1:{port}", "127.1.2.3", "[::1]:{port}", "ui.localhost"]


@pytest.mark.parametrize("host", FOREIGN)
def test_a_foreign_host_name_is_refused_on_loopback(
    serve: Callable[..., Served], host: str
) -> None:
    served = serve()
    header = {"Host": host.format(port=served.port)}
    with served.client() as http:
        for method, path, body in [
            ("GET", "/api/status", None),
            ("GET", "/api/config", None),
            ("GET", "/ui/", None),
            ("POST", "/api/generate/text2img", JOB),  # simple-request CSRF through rebinding
            ("POST", "/api/queue/clear", None),
        ]:
            r = http.request(method, path, json=body, headers=header)
            error = assert_error(r, 400, "INVALID_HOST")
            assert "--allowed-host" in error["message"]
            assert "ui" not in r.headers.get("content-type", "html")
        assert jobs_in(served.app) == 0  # nothing was queued
        assert http.get("/api/status").status_code == 200  # its own name still works


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_names_are_answered(serve: Callable[..., Served], host: str) -> None:
    served = serve()
    with served.client() as http:
        r = http.get("/api/status", headers={"Host": host.format(port=served.port)})
        assert r.status_code == 200, r.text
        r = http.post("/api/generate/text2img", json=JOB, headers={"Host": host.format(port=1)})
        assert r.status_code in (200, 201, 202), r.text
    assert jobs_in(served.app) == 1


def test_a_foreign_websocket_is_refused_before_the_handshake(serve: Callable[..., Served]) -> None:
    served = serve()
    url = f"ws://127.0.0.1:{served.port}/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Host": "evil.example"}, open_timeout=5)
    assert refused.value.response.status_code == 403
    with connect(url, open_timeout=5) as ws:  # the same socket under its own name: accepted
        ws.send('{"type": "ping"}')


def test_allowed_hosts_extend_the_loopback_names(serve: Callable[..., Served]) -> None:
    served = serve(allowed_hosts=("studio.lan", "*.example.org"))
    with served.client() as http:
        for ok in ("studio.lan", "STUDIO.LAN:8080", "gpu.example.org", "localhost"):
            assert http.get("/api/status", headers={"Host": ok}).status_code == 200, ok
        for bad in ("example.org", "evil.example", "studio.lan.evil.example", "xexample.org"):
            assert_error(http.get("/api/status", headers={"Host": bad}), 400, "INVALID_HOST")


def test_star_and_a_wildcard_bind_check_nothing(serve: Callable[..., Served]) -> None:
    # '*' turns the check off; a server bound to every address cannot know its public names
    # (the test's socket is on loopback, the setting says 0.0.0.0)
    for settings in ({"allowed_hosts": ("*",)}, {"host": "0.0.0.0"}):
        served = serve(**settings)
        with served.client() as http:
            r = http.get("/api/status", headers={"Host": "anything.example"})
            assert r.status_code == 200, (settings, r.text)


def test_allowed_hosts_from_the_environment() -> None:
    from sdcpp.server import Settings

    settings = Settings.load(env={"SDCPP_ALLOWED_HOSTS": "a.example, *.lan"})
    assert settings.allowed_hosts == ("a.example", "*.lan")
