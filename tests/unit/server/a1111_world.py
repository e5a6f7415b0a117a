"""A models dir and app for the A1111 dialect's unit tests (fake engine, no native code)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app

API = "/sdapi/v1"
SMALL = {"width": 64, "height": 64, "steps": 2}


def models_dir(root: Path) -> Path:
    models = root / "data" / "models"
    for folder, name in (
        ("checkpoints", "tiny"),
        ("checkpoints", "other"),
        ("vae", "kl"),
        ("loras", "ink"),
        ("embeddings", "bad"),
        ("esrgan", "RealESRGAN_x4"),
    ):
        (models / folder).mkdir(parents=True, exist_ok=True)
        suffix = ".pth" if folder == "esrgan" else ".safetensors"
        _safetensors.save(models / folder / f"{name}{suffix}", {name: np.zeros(2, np.float16)})
    return root / "data"


def app_client(root: Path, engine: FakeEngine, **settings: Any) -> Iterator[TestClient]:
    data = models_dir(root)
    config = Settings(data_dir=data, max_queue=50, shutdown_grace=0.5, **settings)
    with TestClient(create_app(config, engine=engine)) as client:
        yield client


# Fixtures under their own import names (a test module imports them; pytest knows them as
# ``engine`` and ``client``), so a test's ``client`` parameter does not shadow an import.
@pytest.fixture(name="engine")
def engine_fixture() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(name="client")
def client_fixture(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    yield from app_client(tmp_path, engine)


def png_b64(size: tuple[int, int] = (64, 64), color: Any = (200, 30, 30), mode: str = "RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a blocking request in a thread; its response lands in the returned dict."""
    out: dict[str, Any] = {}

    def target() -> None:
        out["response"] = fn(*args, **kwargs)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_running(client: TestClient, count: int = 1, timeout: float = 30) -> dict[str, Any]:
    """Wait until ``count`` jobs have started sampling; the running job's progress body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Counts before progress: read the other way round, the progress could be the last
        # step of a job that was cancelled between the two reads, counted as done.
        started = client.app.state.jobs.store.counts()  # type: ignore[attr-defined]
        done = started.get("completed", 0) + started.get("cancelled", 0)
        body: dict[str, Any] = client.get(f"{API}/progress").json()
        if body["state"]["sampling_step"] >= 1 and done + 1 >= count:
            return body
        time.sleep(0.02)
    raise AssertionError("no job started sampling")
