"""Image utilities, the download endpoint's SSRF rules and /api/estimate, over a fake engine.

Download tests never reach past loopback: refusals are checked with a connection spy that
records every attempt, and the fetches that do happen go to a ``http.server`` on 127.0.0.1
that only an injected policy allows (every other hop is judged by the real policy).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app
from sdcpp.server import estimate as est
from sdcpp.server.fetch import Fetcher, IPAddress, is_public


def png_bytes(
    size: tuple[int, int] = (40, 20), mode: str = "RGB", color: Any = (200, 10, 10)
) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def make_client(tmp_path: Path, engine: FakeEngine, **settings: Any) -> TestClient:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    for name in ("tiny", "other"):  # header-valid files are enough: the fake engine never loads
        _safetensors.save(models / f"{name}.safetensors", {"x": np.zeros(2, np.float16)})
    base = Settings(data_dir=tmp_path / "data", max_queue=20, max_body_mb=1, shutdown_grace=0.5)
    return TestClient(create_app(Settings(**{**_fields(base), **settings}), engine=engine))


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    with make_client(tmp_path, engine, allow_image_download=True) as c:
        yield c


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


# -- resize and crop ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "size"), [("fit", (100, 50)), ("fill", (100, 100)), ("stretch", (100, 100))]
)
def test_resize_modes(client: TestClient, mode: str, size: tuple[int, int]) -> None:
    r = client.post(
        "/api/image/resize",
        json={"image": b64(png_bytes((200, 100))), "width": 100, "height": 100, "mode": mode},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert open_image(r.content).size == size


def test_resize_formats_and_limits(client: TestClient) -> None:
    data_url = "data:image/png;base64," + b64(png_bytes((64, 64), "RGBA", (0, 0, 0, 0)))
    r = client.post(
        "/api/image/resize",
        json={"image": data_url, "width": 32, "height": 32, "format": "jpeg", "quality": 80},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    jpeg = open_image(r.content)
    assert jpeg.format == "JPEG" and jpeg.size == (32, 32)
    assert jpeg.getpixel((16, 16)) == (255, 255, 255)  # transparency flattened onto white
    webp = client.post(
        "/api/image/resize",
        json={"image": b64(png_bytes()), "width": 8, "height": 8, "format": "webp"},
    )
    assert open_image(webp.content).format == "WEBP"
    for width in (7, 4097):
        r = client.post(
            "/api/image/resize", json={"image": b64(png_bytes()), "width": width, "height": 64}
        )
        assert r.status_code == 422 and error_code(r) == "VALIDATION_ERROR"
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    r = client.post(
        "/api/image/resize", json={"image": b64(gif.getvalue()), "width": 64, "height": 64}
    )
    assert r.status_code == 400 and "not allowed" in r.json()["error"]["message"]


def test_crop_inside_and_outside(client: TestClient) -> None:
    source = Image.new("RGB", (50, 40), (0, 0, 255))
    source.paste((255, 0, 0), (10, 10, 20, 20))
    buf = io.BytesIO()
    source.save(buf, format="PNG")
    image = b64(buf.getvalue())
    r = client.post(
        "/api/image/crop", json={"image": image, "x": 10, "y": 10, "width": 10, "height": 10}
    )
    assert r.status_code == 200
    cropped = open_image(r.content)
    assert cropped.size == (10, 10) and cropped.getcolors() == [(100, (255, 0, 0))]
    whole = client.post(
        "/api/image/crop", json={"image": image, "x": 0, "y": 0, "width": 50, "height": 40}
    )
    assert whole.status_code == 200 and open_image(whole.content).size == (50, 40)
    for box in (
        {"x": 41, "y": 0, "width": 10, "height": 10},
        {"x": 0, "y": 0, "width": 50, "height": 41},
    ):
        r = client.post("/api/image/crop", json={"image": image, **box})
        assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETERS"
    r = client.post(
        "/api/image/crop", json={"image": image, "x": -1, "y": 0, "width": 1, "height": 1}
    )
    assert r.status_code == 422


# -- download: policy ---------------------------------------------------------------------
def test_download_is_off_by_default(tmp_path: Path, engine: FakeEngine) -> None:
    with make_client(tmp_path, engine) as c:
        r = c.get("/api/image/download", params={"url": "http://example.com/a.png"})
        assert r.status_code == 403 and error_code(r) == "FEATURE_DISABLED"
    assert Settings.load(env={"SDCPP_ALLOW_IMAGE_DOWNLOAD": "1"}).allow_image_download is True


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("2002:808:808::", True),  # 6to4 of a public address
        ("127.0.0.1", False),
        ("::1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::", False),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


class Spy:
    """Resolver and connector stand-ins that record every call."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = names or {}
        self.resolved: list[str] = []
        self.connected: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.resolved.append(host)
        if host not in self.names:
            raise socket.gaierror(f"unknown name {host}")
        return self.names[host]

    def connect(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.connected.append(address)
        if address[0] != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {address}")
        return socket.create_connection(address, timeout)


REFUSED_URLS = [
    "http://127.0.0.1/a.png",
    "http://127.0.0.1:8080/a.png",
    "http://[::1]/a.png",
    "http://10.1.2.3/a.png",
    "http://192.168.0.10/a.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[::ffff:7f00:1]/a.png",
    "http://[64:ff9b::7f00:1]/a.png",
    "http://localhost/a.png",
    "http://LOCALHOST./a.png",
    "http://images.localhost/a.png",
    "http://internal.test/a.png",  # resolves to a private address
    "http://mixed.test/a.png",  # one public and one private address: refused
    "http://user:secret@public.test/a.png",
    "file:///etc/passwd",
    "ftp://public.test/a.png",
    "gopher://public.test/",
    "//public.test/a.png",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_download_refuses_local_targets_without_connecting(client: TestClient, url: str) -> None:
    spy = Spy(
        {
            "internal.test": ["10.0.0.7"],
            "mixed.test": ["93.184.216.34", "10.0.0.8"],
            "public.test": ["93.184.216.34"],
            "localhost": ["127.0.0.1"],
        }
    )
    client.app.state.fetcher = Fetcher(resolver=spy.resolve, connector=spy.connect)
    r = client.get("/api/image/download", params={"url": url})
    assert r.status_code == 400 and error_code(r) == "URL_NOT_ALLOWED", r.text
    assert spy.connected == []
    assert "localhost" not in spy.resolved  # refused by name, before any lookup


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
def test_numeric_host_forms_are_judged_by_what_they_resolve_to(
    client: TestClient, host: str
) -> None:
    spy = Spy()
    client.app.state.fetcher = Fetcher(connector=spy.connect)  # the system resolver
    r = client.get("/api/image/download", params={"url": f"http://{host}/a.png"})
    assert r.status_code == 400 and error_code(r) == "URL_NOT_ALLOWED", r.text
    assert spy.connected == []


# -- download: against a loopback server ---------------------------------------------------
Route = tuple[int, dict[str, str], bytes]


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Host", "")))
                route = outer.routes.get(self.path, (404, {}, b"missing"))
                status, headers, payload = route() if callable(route) else route
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()  # HTTP/1.0: without Content-Length the body ends at close
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout test) is not a test failure

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def allow_only_me(self, ip: IPAddress, port: int) -> bool:
        """The injected policy: this server, and otherwise exactly the real rules."""
        return (str(ip), port) == ("127.0.0.1", self.port) or is_public(ip)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


def loopback_fetcher(server: LocalServer, spy: Spy, **options: Any) -> Fetcher:
    return Fetcher(
        resolver=spy.resolve, allow=server.allow_only_me, connector=spy.connect, **options
    )


def test_download_returns_a_fresh_png(client: TestClient, server: LocalServer) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (30, 20), (0, 200, 0)).save(jpeg, format="JPEG", comment=b"secret")
    server.routes["/photo.jpg"] = (200, {"Content-Type": "image/jpeg"}, jpeg.getvalue())
    server.routes["/same"] = (302, {"Location": "/photo.jpg"}, b"")
    spy = Spy({"images.test": ["127.0.0.1"]})
    client.app.state.fetcher = loopback_fetcher(server, spy)
    url = f"http://images.test:{server.port}/same"
    r = client.get("/api/image/download", params={"url": url})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = open_image(r.content)
    assert image.format == "PNG" and image.size == (30, 20) and "comment" not in image.info
    # the name was looked up by our resolver only, the socket went to the checked address,
    # and the server was still asked for the name it was given (Host header)
    host = f"images.test:{server.port}"
    assert server.requests == [("/same", host), ("/photo.jpg", host)]
    assert spy.connected == [("127.0.0.1", server.port)] * 2
    assert spy.resolved == ["images.test", "images.test"]  # every hop checked again


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:{other}/a.png",
        "http://localhost:{port}/a.png",
        "http://[::1]:{port}/a.png",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_local_address_is_refused(
    client: TestClient, server: LocalServer, location: str
) -> None:
    other = server.port + 1 if server.port < 65535 else server.port - 1
    target = location.format(port=server.port, other=other)
    server.routes["/hop"] = (302, {"Location": target}, b"")
    spy = Spy()
    client.app.state.fetcher = loopback_fetcher(server, spy)
    r = client.get("/api/image/download", params={"url": f"{server.base}/hop"})
    assert r.status_code == 400 and error_code(r) == "URL_NOT_ALLOWED", r.text
    assert server.requests == [("/hop", f"127.0.0.1:{server.port}")]
    assert spy.connected == [("127.0.0.1", server.port)]  # the first hop only


def test_redirect_limit(client: TestClient, server: LocalServer) -> None:
    server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    client.app.state.fetcher = loopback_fetcher(server, Spy(), max_redirects=3)
    r = client.get("/api/image/download", params={"url": f"{server.base}/loop"})
    assert r.status_code == 502 and "redirects" in r.json()["error"]["message"]
    assert len(server.requests) == 4  # the first request and three redirects


def test_download_size_caps(client: TestClient, server: LocalServer) -> None:
    big = png_bytes((300, 300), "RGB", None) + b"\0" * 5000
    server.routes["/declared"] = (200, {"Content-Length": str(len(big))}, big)
    server.routes["/undeclared"] = (200, {}, big)  # no length: counted while reading
    client.app.state.fetcher = loopback_fetcher(server, Spy(), max_bytes=4000)
    for path in ("/declared", "/undeclared"):
        r = client.get("/api/image/download", params={"url": f"{server.base}{path}"})
        assert r.status_code == 413 and error_code(r) == "PAYLOAD_TOO_LARGE", path


def test_download_refuses_what_is_not_an_allowed_image(
    client: TestClient, server: LocalServer
) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    server.routes["/page"] = (200, {"Content-Type": "image/png"}, b"<html>hello</html>")
    server.routes["/anim.gif"] = (200, {"Content-Type": "image/gif"}, gif.getvalue())
    server.routes["/gone"] = (404, {}, b"")
    client.app.state.fetcher = loopback_fetcher(server, Spy())
    for path in ("/page", "/anim.gif"):
        r = client.get("/api/image/download", params={"url": f"{server.base}{path}"})
        assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETERS", path
    r = client.get("/api/image/download", params={"url": f"{server.base}/gone"})
    assert r.status_code == 502 and error_code(r) == "DOWNLOAD_FAILED"


def test_download_time_cap(client: TestClient, server: LocalServer) -> None:
    released = threading.Event()

    def slow() -> Route:
        released.wait(30)  # answers only when the test is done (or after 30 s)
        return 200, {}, png_bytes()

    server.routes["/slow"] = slow
    client.app.state.fetcher = loopback_fetcher(server, Spy(), timeout=0.3)
    started = time.monotonic()
    try:
        r = client.get("/api/image/download", params={"url": f"{server.base}/slow"})
    finally:
        released.set()
    assert r.status_code == 504 and error_code(r) == "DOWNLOAD_TIMEOUT"
    # Without the cap the answer would wait for the release (30 s); the margin is for a
    # loaded machine, not a timing claim.
    assert time.monotonic() - started < 15


# -- estimate -----------------------------------------------------------------------------
def run_job(client: TestClient, **payload: Any) -> None:
    job_id = client.post("/api/generate/text2img", json={"prompt": "x", **payload}).json()["job_id"]
    deadline = time.monotonic() + 10
    while client.get(f"/api/queue/job/{job_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.02)


def test_estimate_defaults_without_history(client: TestClient) -> None:
    r = client.post("/api/estimate", json={"width": 512, "height": 512, "steps": 20})
    assert r.status_code == 200
    body = r.json()
    assert body["basis"] == "default" and body["samples"] == 0
    expected = est.DEFAULT_SECONDS_PER_MEGAPIXEL_STEP * 20 * 512 * 512 / 1e6
    assert body["estimated_seconds"] == pytest.approx(expected, rel=1e-3)
    model_mb = (client.app.state.registry.get("tiny").size) / 2**20
    memory = model_mb + est.OVERHEAD_MB + est.COMPUTE_MB_PER_MEGAPIXEL * 512 * 512 / 1e6
    assert body["estimated_memory_mb"] == round(memory)
    assert body["memory_basis"] == "model_file"
    bigger = client.post("/api/estimate", json={"width": 1024, "height": 1024}).json()
    assert bigger["estimated_memory_mb"] > body["estimated_memory_mb"]


def test_estimate_uses_measured_jobs_of_the_same_model(client: TestClient) -> None:
    # the fake engine reports 0.01 s per job: 0.01 / (2 steps * 64*64 px * 1) per pixel-step
    run_job(client, model_name="tiny", width=64, height=64, steps=2)
    run_job(client, model_name="tiny", width=64, height=64, steps=2, batch_count=2)
    rate = [0.01 / (2 * 64 * 64), 0.01 / (2 * 64 * 64 * 2)]
    r = client.post(
        "/api/estimate",
        json={"model_name": "tiny", "width": 128, "height": 64, "steps": 8, "batch_count": 3},
    )
    body = r.json()
    assert body["basis"] == "measured" and body["samples"] == 2 and body["matched"] == "model"
    assert body["same_size"] is False
    expected = (sum(rate) / 2) * 8 * 128 * 64 * 3  # median of two = their mean
    assert body["estimated_seconds"] == pytest.approx(expected, rel=1e-3)
    # another model whose architecture is unknown learns nothing from tiny's jobs
    other = client.post("/api/estimate", json={"model_name": "other"}).json()
    assert other["basis"] == "default" and other["samples"] == 0
    r = client.post("/api/estimate", json={"model_name": "missing"})
    assert r.status_code == 404 and error_code(r) == "MODEL_NOT_FOUND"
    assert client.post("/api/estimate", json={"steps": 0}).status_code == 422


def test_estimate_groups_by_architecture_and_prefers_the_same_size() -> None:
    samples = [
        est.Sample("/m/a.safetensors", 512 * 512, 1e-6),
        est.Sample("/m/b.safetensors", 1024 * 1024, 4e-6),
        est.Sample("/m/flux.gguf", 1024 * 1024, 9e-5),
    ]
    arch = {"/m/a.safetensors": "sdxl", "/m/b.safetensors": "sdxl", "/m/c.gguf": "sdxl"}
    arch["/m/flux.gguf"] = "flux_dev"
    common: dict[str, Any] = {"steps": 10, "batch_count": 1, "model_bytes": 2**30}
    same_size = est.estimate(
        samples, model="/m/c.gguf", architecture_of=arch, width=1024, height=1024, **common
    )
    assert same_size["matched"] == "architecture" and same_size["same_size"] is True
    assert same_size["estimated_seconds"] == pytest.approx(4e-6 * 10 * 1024 * 1024, rel=1e-3)
    scaled = est.estimate(
        samples, model="/m/c.gguf", architecture_of=arch, width=768, height=768, **common
    )
    assert scaled["samples"] == 2 and scaled["same_size"] is False  # flux's rate is not used
    assert scaled["estimated_seconds"] == pytest.approx(2.5e-6 * 10 * 768 * 768, rel=1e-3)


def test_openapi_lists_the_new_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "requestBody" in spec["paths"]["/api/image/resize"]["post"]
    assert "EstimateRequest" in spec["components"]["schemas"]
    assert "get" in spec["paths"]["/api/image/download"]


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"", "empty image data"),
        (b"GIF89a-but-not-really", "unknown format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG, JPEG or WebP"),
    ],
)
def test_unreadable_images_are_explained_without_python_reprs(
    client: TestClient, raw: bytes, said: str
) -> None:
    r = client.post("/api/generate/upscale", json={"image": base64.b64encode(raw).decode()})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert said in message and "object at 0x" not in message and "BytesIO" not in message


def test_a_truncated_image_is_called_damaged(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    payload = {"image": base64.b64encode(buf.getvalue()[:-30]).decode(), "width": 8, "height": 8}
    r = client.post("/api/image/resize", json=payload)
    assert r.status_code == 400 and "damaged or truncated" in r.json()["error"]["message"]
