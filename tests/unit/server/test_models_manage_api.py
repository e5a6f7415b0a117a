"""Hash progress events, validate's load test, refresh's lists and model uploads (FakeEngine)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def _weights(path: Path, n: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _safetensors.save(path, {"w.weight": np.ones((n, n), np.float16)})
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    _weights(root / "checkpoints/alpha.safetensors")
    _weights(root / "loras/style.safetensors")
    big = root / "checkpoints/big.safetensors"  # several hashing chunks (8 MiB each)
    _safetensors.save(big, {"w": np.arange(5 * 2**20, dtype=np.float32)})
    broken = _weights(root / "checkpoints/broken.safetensors")
    with broken.open("r+b") as f:
        f.truncate(broken.stat().st_size - 10)
    return root


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(root: Path, engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(data_dir=root.parent, shutdown_grace=0.5, max_upload_mb=1)
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- hash ----------------------------------------------------------------------------------
def test_hash_publishes_progress_then_answers_from_the_cache(
    client: TestClient, root: Path
) -> None:
    expected = hashlib.sha256((root / "checkpoints/big.safetensors").read_bytes()).hexdigest()
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        r = client.post("/api/models/hash", json={"model_id": "big"})
        assert r.status_code == 200 and r.json()["sha256"] == expected
        assert r.json()["cached"] is False
        events: list[dict[str, Any]] = []
        while not events or events[-1]["progress"] < 1.0:
            message = ws.receive_json()
            if message["type"] == "model_hash":
                events.append(message["data"])
    assert events[-1]["bytes_done"] == events[-1]["bytes_total"] == r.json()["size"]
    assert events[-1]["path"] == "checkpoints/big.safetensors"
    again = client.post("/api/models/hash", json={"model_id": "big"}).json()
    assert again["sha256"] == expected and again["cached"] is True


# -- validate ------------------------------------------------------------------------------
def test_validate_with_a_load_test(client: TestClient, engine: FakeEngine, root: Path) -> None:
    r = client.post("/api/models/validate", json={"model_id": "alpha", "load_test": True})
    assert r.status_code == 200, r.text
    load = r.json()["checks"][-1]
    assert load["name"] == "load" and load["ok"] and not load["skipped"]
    assert r.json()["valid"] is True
    assert engine.loads[-1]["model"] == str(root / "checkpoints/alpha.safetensors")
    assert r.json()["dtypes"]["primary"] == "F16"

    without = client.post("/api/models/validate", json={"model_id": "alpha"}).json()
    assert [c["name"] for c in without["checks"]] == ["header", "companions"]

    lora = client.post("/api/models/validate", json={"model_id": "style", "load_test": True})
    assert lora.json()["checks"][-1]["skipped"] is True and lora.json()["valid"] is True


def test_validate_load_test_failure(
    client: TestClient, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(params: dict[str, Any]) -> dict[str, Any]:
        return {"type": "failed", "job_id": "l", "error": "unknown tensor", "code": "X"}

    monkeypatch.setattr(engine, "load", refuse)
    r = client.post("/api/models/validate", json={"model_id": "alpha", "load_test": True})
    load = r.json()["checks"][-1]
    assert not load["ok"] and load["message"] == "unknown tensor"
    assert r.json()["valid"] is False

    broken = client.post("/api/models/validate", json={"model_id": "broken", "load_test": True})
    assert broken.json()["valid"] is False and broken.json()["checks"][-1]["skipped"] is True


# -- refresh -------------------------------------------------------------------------------
def test_refresh_lists_found_updated_removed(client: TestClient, root: Path) -> None:
    _weights(root / "checkpoints/new.safetensors")
    _weights(root / "checkpoints/alpha.safetensors", n=32)  # same path, new content
    (root / "loras/style.safetensors").unlink()
    r = client.post("/api/models/refresh").json()
    assert [m["path"] for m in r["found"]] == ["checkpoints/new.safetensors"]
    assert [m["path"] for m in r["updated"]] == ["checkpoints/alpha.safetensors"]
    assert [m["path"] for m in r["removed"]] == ["loras/style.safetensors"]
    assert (r["models_found"], r["models_updated"], r["models_removed"]) == (1, 1, 1)


# -- upload --------------------------------------------------------------------------------
def _model_bytes(n: int = 64) -> bytes:
    """A small LoRA in safetensors form, as a client would send it."""
    tensors = {
        "lora_unet_down.lora_down.weight": np.ones((4, n), np.float16),
        "lora_unet_down.lora_up.weight": np.ones((n, 4), np.float16),
    }
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "m.safetensors"
        _safetensors.save(target, tensors)
        return target.read_bytes()


def _upload(client: TestClient, data: bytes, **query: str) -> Any:
    return client.post("/api/models/upload", params=query, content=data)


def test_upload_streams_checks_and_registers(client: TestClient, root: Path) -> None:
    data = _model_bytes()
    r = _upload(client, data, type="lora", filename="mine.safetensors")
    assert r.status_code == 201, r.text
    model = r.json()["model"]
    assert model["path"] == "loras/mine.safetensors" and model["type"] == "lora"
    assert r.json()["detection"]["role"] == "component"
    assert (root / "loras/mine.safetensors").read_bytes() == data
    listed = client.get("/api/models", params={"search": "mine"}).json()["models"]
    assert [m["id"] for m in listed] == [model["id"]]
    assert not [p for p in _files(root) if ".upload-" in p]

    r = _upload(client, data, type="lora", filename="mine.safetensors")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_EXISTS"
    changed = data[:-1] + b"\x01"
    r = _upload(client, changed, type="lora", filename="mine.safetensors", overwrite="1")
    assert r.status_code == 201 and (root / "loras/mine.safetensors").read_bytes()[-1] == 1


def test_upload_of_a_text_encoder_into_its_subfolder(client: TestClient, root: Path) -> None:
    r = _upload(
        client, _model_bytes(), type="text_encoder", subfolder="clip_l", filename="c.safetensors"
    )
    assert r.status_code == 201, r.text
    assert r.json()["model"]["path"] == "text_encoders/clip_l/c.safetensors"


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"type": "lora"}, 400, "type and filename"),
        ({"type": "lora", "filename": "../x.safetensors"}, 400, "plain"),
        ({"type": "lora", "filename": ".x.safetensors"}, 400, "plain"),
        ({"type": "lora", "filename": "x.exe"}, 400, "ends in one of"),
        ({"type": "sparkles", "filename": "x.safetensors"}, 400, "sparkles"),
        ({"type": "lora", "subfolder": "clip_l", "filename": "x.safetensors"}, 400, "subfolder"),
    ],
)
def test_refused_upload_names(
    client: TestClient, root: Path, query: dict[str, str], status: int, says: str
) -> None:
    before = _files(root)
    r = _upload(client, _model_bytes(), **query)
    assert r.status_code == status and says in r.json()["error"]["message"], r.text
    assert _files(root) == before


def test_upload_that_is_not_a_model_leaves_nothing(client: TestClient, root: Path) -> None:
    before = _files(root)
    truncated = _model_bytes()[:-7]
    r = _upload(client, truncated, type="checkpoint", filename="t.safetensors")
    assert r.status_code == 422 and r.json()["error"]["code"] == "MODEL_INVALID"
    assert "checkpoints/t.safetensors" in r.json()["error"]["message"]
    r = _upload(client, b"hello world, not a model", type="vae", filename="v.gguf")
    assert r.status_code == 422
    assert _files(root) == before


def test_upload_size_limit(client: TestClient, root: Path) -> None:
    before = _files(root)
    r = _upload(client, b"\0" * (2**20 + 1), type="checkpoint", filename="huge.safetensors")
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(3):
            yield b"\0" * 400_000

    r = client.post(
        "/api/models/upload",
        params={"type": "checkpoint", "filename": "huge.safetensors"},
        content=chunked(),
    )
    assert r.status_code == 413
    assert _files(root) == before
