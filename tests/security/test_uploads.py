"""Uploads: oversized bodies (declared and chunked), wrong magic, decompression bombs,
polyglots, malformed base64 and path names in multipart filenames and upload names.

Every refusal answers its status in the route's error shape, queues nothing and leaves no file
behind; what is accepted is stored re-encoded (a fresh PNG in the job's input folder), so no
script or trailing payload a client sent can come back out.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attack import assert_error, data_dir, jobs_in
from fake_engine import FakeEngine
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app

SCRIPT = b"<script>alert(document.cookie)</script>"
JOB = {"prompt": "x", "steps": 1, "width": 64, "height": 64}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=data_dir(tmp_path),
        shutdown_grace=0.5,
        max_body_mb=1,
        max_upload_mb=1,
        max_image_pixels=1024 * 1024,
    )
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def png(size: tuple[int, int] = (64, 64), text: str | None = None) -> bytes:
    buf = io.BytesIO()
    info = PngInfo()
    if text is not None:
        info.add_text("Comment", text)
    Image.new("RGB", size, (10, 20, 30)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def png_bomb(side: int) -> bytes:
    """A valid PNG announcing ``side`` x ``side`` pixels in a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunks + chunk(b"IEND", b"")


def other_format(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format=fmt)
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and "sdcpp.db" not in p.name}


def nothing_written(client: TestClient, before: set[Path]) -> None:
    root = Path(client.app.state.settings.data_dir)  # type: ignore[attr-defined]
    assert files_under(root) - before == set()
    assert jobs_in(client.app) == 0


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"GIF89a" + b"\0" * 64, 400, "not a PNG, JPEG or WebP"),
        (other_format("GIF"), 400, "format GIF not allowed"),
        (other_format("BMP"), 400, "format BMP not allowed"),
        (other_format("TIFF"), 400, "format TIFF not allowed"),
        (SCRIPT, 400, "not a PNG, JPEG or WebP"),
        (b"%PDF-1.7\n" + SCRIPT, 400, "not a PNG, JPEG or WebP"),
        (b"", 400, "empty image data"),
        (png()[:60], 400, "damaged or truncated"),
        (png_bomb(50_000), 413, "pixels"),
    ],
    ids=["gif-magic", "gif", "bmp", "tiff", "html", "pdf", "empty", "truncated", "bomb"],
)
def test_bad_images_are_refused_before_queueing(
    client: TestClient, raw: bytes, status: int, words: str
) -> None:
    before = files_under(Path(client.app.state.settings.data_dir))
    body = (
        {**JOB, "init_image": b64(raw)} if raw else {**JOB, "init_image": "data:image/png;base64,"}
    )
    r = client.post("/api/generate/img2img", json=body)
    code = "PAYLOAD_TOO_LARGE" if status == 413 else "INVALID_PARAMETERS"
    error = assert_error(r, status, code)
    assert words in error["message"] and "init_image" in error["message"]
    nothing_written(client, before)


@pytest.mark.parametrize("text", ["not base64 at all!", "aGVsbG8", "data:image/png;base64,@@@"])
def test_malformed_base64_is_refused(client: TestClient, text: str) -> None:
    r = client.post("/api/generate/img2img", json={**JOB, "init_image": text})
    error = assert_error(r, 400, "INVALID_PARAMETERS")
    assert "init_image" in error["message"] and text not in error["message"]
    assert jobs_in(client.app) == 0


def test_oversized_bodies_are_refused_declared_or_chunked(client: TestClient) -> None:
    big = b64(png()) + "A" * (2 * 2**20)
    body = {**JOB, "init_image": big}
    assert_error(client.post("/api/generate/img2img", json=body), 413, "PAYLOAD_TOO_LARGE")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"prompt": "x", "init_image": "'
        for _ in range(40):
            yield b"A" * 65536
        yield b'"}'

    r = client.post(
        "/api/generate/img2img", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert jobs_in(client.app) == 0


def test_a_polyglot_is_stored_re_encoded(client: TestClient) -> None:
    """A PNG with a script in a text chunk and an HTML/zip payload after IEND is accepted as
    the picture it is; the stored input is a fresh PNG without either."""
    polyglot = png(text=SCRIPT.decode()) + SCRIPT + b"PK\x03\x04" + b"\0" * 26
    r = client.post("/api/generate/img2img", json={**JOB, "init_image": b64(polyglot)})
    assert r.status_code in (200, 201, 202), r.text
    stored = list((Path(client.app.state.settings.data_dir) / "inputs").rglob("*.png"))
    assert len(stored) == 1
    data = stored[0].read_bytes()
    assert SCRIPT not in data and b"PK\x03\x04" not in data and data.endswith(b"IEND\xaeB`\x82")
    assert Image.open(io.BytesIO(data)).size == (64, 64)


@pytest.mark.parametrize(
    "filename",
    ["../../../../evil.png", "/etc/cron.d/evil.png", "..\\..\\evil.png", "x/../../evil.png"],
)
def test_multipart_file_names_are_never_used_as_paths(
    client: TestClient, tmp_path: Path, filename: str
) -> None:
    files = {"image": (filename, png(), "image/png")}
    r = client.post("/v1/images/edits", data={"prompt": "x", "size": "64x64"}, files=files)
    assert r.status_code == 200, r.text
    assert not list(tmp_path.rglob("evil.png")) and not Path("/etc/cron.d/evil.png").exists()
    (job,) = client.app.state.jobs.store.list(limit=10)
    stored = Path(job.params["init_image_path"])  # our name in the job's folder, not theirs
    inputs = Path(client.app.state.settings.data_dir) / "inputs" / job.id
    assert stored == inputs / "init.png" and "evil" not in repr(job.params)


def test_multipart_bombs_and_wrong_types_answer_in_openai_shape(client: TestClient) -> None:
    for raw, status in [(png_bomb(50_000), 413), (SCRIPT, 400), (other_format("GIF"), 400)]:
        files = {"image": ("a.png", raw, "image/png")}
        r = client.post("/v1/images/edits", data={"prompt": "x"}, files=files)
        assert r.status_code == status, r.text
        error: dict[str, Any] = r.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}
        assert "object at 0x" not in error["message"]
    assert jobs_in(client.app) == 0
    assert not list((Path(client.app.state.settings.data_dir) / "inputs").rglob("*.png"))


def model_upload(client: TestClient, filename: str, content: bytes, **query: str) -> Any:
    params = {"type": "checkpoint", "filename": filename, **query}
    return client.post("/api/models/upload", params=params, content=content)


@pytest.mark.parametrize(
    "filename",
    ["../evil.safetensors", "../../outside.safetensors", "/tmp/evil.safetensors", "a/b.gguf"],
)
def test_model_upload_names_cannot_leave_their_folder(
    client: TestClient, tmp_path: Path, filename: str
) -> None:
    tensors = io.BytesIO()
    _safetensors.save(tmp_path / "real.safetensors", {"x": np.zeros(2, np.float16)})
    tensors.write((tmp_path / "real.safetensors").read_bytes())
    before = files_under(tmp_path)
    r = model_upload(client, filename, tensors.getvalue())
    assert_error(r, 400, "INVALID_PARAMETERS")
    assert files_under(tmp_path) == before
    assert not Path("/tmp/evil.safetensors").exists()


def test_model_upload_wrong_magic_and_oversize_leave_nothing(client: TestClient) -> None:
    checkpoints = Path(client.app.state.settings.data_dir) / "models" / "checkpoints"
    before = set(checkpoints.iterdir())
    r = model_upload(client, "fake.safetensors", SCRIPT * 10)  # not a safetensors header
    assert r.status_code == 422 and r.json()["error"]["code"] == "MODEL_INVALID", r.text
    r = model_upload(client, "fake.gguf", png())  # a picture named as a model
    assert r.status_code == 422, r.text
    r = model_upload(client, "big.safetensors", b"\0" * (2 * 2**20))  # over max_upload_mb
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert set(checkpoints.iterdir()) == before  # no temp file, nothing registered
    names = [m["name"] for m in client.get("/api/models").json().get("models", [])]
    assert not [n for n in names if "fake" in n or "big" in n]
