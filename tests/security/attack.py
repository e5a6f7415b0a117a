"""Shared by the attack suite (imported by name: tests/security/conftest.py puts this folder
on sys.path): the app served by a real uvicorn on a loopback socket (what an attacker's
browser or script would reach), with the fake engine, and the checks of an error's shape."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import uvicorn
from fake_engine import FakeEngine

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app, listen


@dataclass
class Served:
    app: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)


def data_dir(root: Path) -> Path:
    """A data dir with one (header-valid) checkpoint, so generation requests validate."""
    checkpoints = root / "data" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    _safetensors.save(checkpoints / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    return root / "data"


@contextlib.contextmanager
def on_loopback(app: Any, settings: Settings, **uvicorn_options: Any) -> Iterator[int]:
    """Serve ``app`` with ``listen.configure`` on a fresh 127.0.0.1 port (yielded) until exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {"log_level": "warning", "access_log": False, **uvicorn_options}
    server = uvicorn.Server(listen.configure(app, settings, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def serving(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """``start(**settings)``: the app on 127.0.0.1 (a fresh port); all stopped at the end."""
    numbers = itertools.count()
    with contextlib.ExitStack() as running:

        def start(**overrides: Any) -> Served:
            root = tmp_path / f"server{next(numbers)}"
            settings = Settings(**{"data_dir": data_dir(root), "shutdown_grace": 0.5, **overrides})
            app = create_app(settings, engine=FakeEngine())
            return Served(app, running.enter_context(on_loopback(app, settings)))

        yield start


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The native envelope with this status and code, a request id, and no Python internals."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["status_code"] == status
    assert error["request_id"] == response.headers["x-request-id"]
    assert isinstance(error["message"], str) and error["message"]
    assert "object at 0x" not in error["message"] and "Traceback" not in error["message"]
    return dict(error)


def jobs_in(app: Any) -> int:
    return len(app.state.jobs.store.list(limit=10_000))
