"""SSRF: ``GET /api/image/download`` and image fields given as URLs (img2img's ``init_image``)
never reach this machine or its private networks, whatever the spelling, through redirects,
or through a name whose DNS answer is (or later becomes) private; hostile answers fail cleanly.

Only loopback is ever contacted. Refusals are proven against a real trap: a TCP listener on
127.0.0.1 (and ::1 where the kernel has it) that counts every connection, reached by the
server's real connector and, where a test needs no stub, its real resolver. The fetches that
do happen go to tests/unit/server's ``LocalServer``, which only an injected policy allows.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attack import assert_error, data_dir, jobs_in
from fake_engine import FakeEngine
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from starlette.testclient import TestClient
from test_images_api import LocalServer, Spy, loopback_fetcher

from sdcpp.server import Settings, create_app


class Trap:
    """Listens on loopback and counts the connections it is offered (it never answers)."""

    def __init__(self) -> None:
        self.hits = 0
        self.closed = False
        self.socks = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.socks[0].getsockname()[1]
        with contextlib.suppress(OSError):  # the same port on ::1 for the IPv6 spellings
            self.socks.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        for sock in self.socks:
            sock.settimeout(0.2)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while not self.closed:
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.closed = True
        for sock in self.socks:
            sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir(tmp_path), shutdown_grace=0.5, allow_image_download=True)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


# Hosts meaning this machine or a private network, in the spellings a filter tends to miss;
# {p} is the trap's port. Every one must be refused before any connection.
LOCAL_HOSTS = [
    "127.0.0.1:{p}",
    "127.255.255.254:{p}",
    "127.1:{p}",  # inet_aton's short forms, octal and hex: resolved by the system resolver
    "0177.0.0.1:{p}",
    "0x7f000001:{p}",
    "2130706433:{p}",
    "127.0.0.1.:{p}",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11:{p}",  # full-width digits: IDNA makes 127.0.0.1
    "0.0.0.0:{p}",
    "[::1]:{p}",
    "[0:0:0:0:0:0:0:1]:{p}",
    "[::]:{p}",
    "[::ffff:127.0.0.1]:{p}",  # IPv4-mapped, both notations, short and long
    "[::ffff:7f00:1]:{p}",
    "[0:0:0:0:0:ffff:127.0.0.1]:{p}",
    "[::127.0.0.1]:{p}",  # IPv4-compatible (deprecated)
    "[64:ff9b::7f00:1]:{p}",  # NAT64 of loopback
    "[64:ff9b::a00:1]:{p}",  # NAT64 of 10.0.0.1
    "[64:ff9b:1::1]:{p}",  # NAT64 local-use prefix
    "[2002:7f00:1::]:{p}",  # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::]:{p}",  # 6to4 of 169.254.169.254
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:{p}",  # Teredo
    "[fe80::1]:{p}",  # link-local
    "[fc00::1]:{p}",  # unique local
    "[ff02::1]:{p}",  # multicast
    "[::ffff:169.254.169.254]:{p}",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1:{p}",
    "10.0.0.1:{p}",
    "172.16.0.1:{p}",
    "192.168.1.1:{p}",
    "100.64.0.1:{p}",  # carrier-grade NAT
    "198.18.0.1:{p}",  # benchmarking
    "192.0.0.8:{p}",  # an older Python's ipaddress calls these three global
    "192.88.99.1:{p}",
    "[3fff::1]:{p}",
    "224.0.0.1:{p}",
    "240.0.0.1:{p}",
    "255.255.255.255:{p}",
    "localhost:{p}",
    "LOCALHOST.:{p}",
    "api.localhost:{p}",
]


def download(client: TestClient, url: str) -> Any:
    return client.get("/api/image/download", params={"url": url})


@pytest.mark.parametrize("host", LOCAL_HOSTS)
def test_local_and_private_hosts_are_refused_unconnected(
    client: TestClient, trap: Trap, host: str
) -> None:
    # the real resolver and connector: a refusal that came too late would hit the trap
    r = download(client, f"http://{host.format(p=trap.port)}/latest/meta-data/")
    assert_error(r, 400, "URL_NOT_ALLOWED")
    assert trap.hits == 0


@pytest.mark.parametrize("host", ["127.0.0.1:{p}", "[::ffff:127.0.0.1]:{p}", "localhost:{p}"])
def test_an_image_field_given_as_a_url_is_held_to_the_same_rules(
    client: TestClient, trap: Trap, host: str
) -> None:
    url = f"http://{host.format(p=trap.port)}/a.png"
    body = {"prompt": "x", "steps": 1, "width": 64, "height": 64, "init_image": url}
    r = client.post("/api/generate/img2img", json=body)
    assert_error(r, 400, "URL_NOT_ALLOWED")
    assert trap.hits == 0 and jobs_in(client.app) == 0
    inputs = Path(client.app.state.settings.data_dir)
    assert not [p for p in inputs.rglob("init*.png")]  # no input was stored


def test_downloads_are_off_unless_enabled(tmp_path: Path, trap: Trap) -> None:
    settings = Settings(data_dir=data_dir(tmp_path), shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        url = f"http://127.0.0.1:{trap.port}/a.png"
        assert_error(download(c, url), 403, "FEATURE_DISABLED")
        body = {"prompt": "x", "steps": 1, "init_image": url}
        assert_error(c.post("/api/generate/img2img", json=body), 403, "FEATURE_DISABLED")
        assert jobs_in(c.app) == 0
    assert trap.hits == 0


@pytest.mark.parametrize(
    "location",
    [
        "http://[::ffff:127.0.0.1]:{trap}/x",
        "http://localhost:{trap}/x",
        "http://[2002:7f00:1::]:{trap}/x",
        "http://internal.test:{trap}/x",  # a name with a private answer
        "http://rebind.test:{trap}/x",  # a name whose answer turned private after hop 1
        "//127.0.0.1:{trap}/x",  # scheme-relative
        "http://0.0.0.0:{trap}/x",
    ],
)
def test_redirects_to_private_places_are_refused(
    client: TestClient, local_server: LocalServer, trap: Trap, location: str
) -> None:
    local_server.routes["/hop"] = (302, {"Location": location.format(trap=trap.port)}, b"")
    spy = Spy({"internal.test": ["10.1.2.3"], "rebind.test": ["127.0.0.1"]})
    client.app.state.fetcher = loopback_fetcher(local_server, spy)
    r = download(client, f"{local_server.base}/hop")
    assert_error(r, 400, "URL_NOT_ALLOWED")
    assert spy.connected == [("127.0.0.1", local_server.port)]  # the first hop only
    assert trap.hits == 0


def test_dns_rebinding_cannot_move_a_checked_connection(
    client: TestClient, local_server: LocalServer
) -> None:
    """The name answers the allowed address when checked and a private one afterwards: the
    connection goes to the checked address, and the name is resolved once per hop."""
    local_server.routes["/a.png"] = (200, {"Content-Type": "image/png"}, png(8, 8))
    spy = Flipping()
    client.app.state.fetcher = loopback_fetcher(local_server, spy)
    r = download(client, f"http://flip.test:{local_server.port}/a.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    assert spy.resolved == ["flip.test"]
    assert spy.connected == [("127.0.0.1", local_server.port)]


class Flipping(Spy):
    """A resolver whose answer for any name turns private after the first lookup."""

    def resolve(self, host: str, port: int) -> list[str]:
        self.resolved.append(host)
        return ["127.0.0.1"] if len(self.resolved) == 1 else ["10.9.9.9"]


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(side: int) -> bytes:
    """A valid PNG header announcing ``side`` x ``side`` pixels, with hardly any data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit greyscale
    idat = zlib.compress(b"\0" * (side + 1) * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_hostile_answers_fail_cleanly(client: TestClient, local_server: LocalServer) -> None:
    good = png(8, 8)
    gzip_bomb = gzip.compress(b"\0" * 20 * 2**20)  # 20 MiB of zeros in ~20 KB
    local_server.routes.update(
        {
            # claims fewer bytes than it sends: the claimed length is read, the image is cut
            "/short": (200, {"Content-Length": "40"}, good),
            # claims more than it sends, then closes: an incomplete read
            "/long": (200, {"Content-Length": str(len(good) + 500)}, good),
            # compressed: never inflated by us, and no image once inflated either
            "/gzip": (200, {"Content-Encoding": "gzip", "Content-Type": "image/png"}, gzip_bomb),
            "/bomb.png": (200, {"Content-Type": "image/png"}, png_bomb(60_000)),
            "/html": (200, {"Content-Type": "image/png"}, b"<script>alert(1)</script>"),
        }
    )
    client.app.state.fetcher = loopback_fetcher(local_server, Spy())
    expected = {
        "/short": (400, "INVALID_PARAMETERS"),
        "/long": (502, "DOWNLOAD_FAILED"),
        "/gzip": (400, "INVALID_PARAMETERS"),
        "/bomb.png": (413, "PAYLOAD_TOO_LARGE"),
        "/html": (400, "INVALID_PARAMETERS"),
    }
    for path, (status, code) in expected.items():
        r = download(client, f"{local_server.base}{path}")
        error = assert_error(r, status, code)
        assert "<script>" not in r.text, path  # hostile bytes never come back
        assert str(local_server.port) not in error["message"] or status == 502, error


def test_a_download_that_works_is_re_encoded(client: TestClient, local_server: LocalServer) -> None:
    # a PNG with a script in a text chunk: what comes back is a fresh PNG without it
    buf = io.BytesIO()
    info = PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    local_server.routes["/a.png"] = (200, {"Content-Type": "image/png"}, buf.getvalue())
    client.app.state.fetcher = loopback_fetcher(local_server, Spy())
    r = download(client, f"{local_server.base}/a.png")
    assert r.status_code == 200 and b"<script>" not in r.content
    assert Image.open(io.BytesIO(r.content)).size == (8, 8)
