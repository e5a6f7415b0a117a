"""Helpers for the OpenAI dialect's unit tests: an app over a recording fake engine."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def make_app(tmp_path: Path, engine: Recorder, **kw: Any) -> TestClient:
    models = tmp_path / "data" / "models" / "checkpoints"
    models.mkdir(parents=True, exist_ok=True)
    _safetensors.save(models / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5, **kw)
    return TestClient(create_app(settings, engine=engine))


class Recorder(FakeEngine):
    """Keeps each job's input images: the server removes them once the job ends."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, Any]] = []

    def run(self, job_id: str, kind: str, params: dict[str, Any], *rest: Any) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in params.items():
            if key.endswith("_path") and isinstance(value, str):
                seen[key] = Image.open(value).copy()
            elif key.endswith("_paths"):
                seen[key] = [Image.open(v).copy() for v in value]
        self.inputs.append(seen)
        return super().run(job_id, kind, params, *rest)


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB", color: Any = (200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def last_params(engine: Recorder) -> dict[str, Any]:
    return engine.runs[-1][2]


def last_inputs(engine: Recorder) -> dict[str, Any]:
    return engine.inputs[-1]
