"""Load, unload and batch endpoints, and the "loaded" flag of the model list (FakeEngine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient
from test_models_api import model_id

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _safetensors.save(path, {"a": np.zeros(4, np.float16), "b": np.zeros(2, np.float16)})
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    _checkpoint(root / "checkpoints/alpha.safetensors")
    _checkpoint(root / "checkpoints/beta.safetensors")
    _checkpoint(root / "loras/detail.safetensors")
    broken = _checkpoint(root / "checkpoints/broken.safetensors")
    with broken.open("r+b") as f:  # the header promises more data than the file holds
        f.truncate(broken.stat().st_size - 1)
    return root


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(root: Path, engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(data_dir=root.parent, shutdown_grace=0.5, threads=3)
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def loaded_names(client: TestClient) -> list[str]:
    listed = client.get("/api/models", params={"limit": 0}).json()["models"]
    return [m["name"] for m in listed if m["loaded"]]


def test_load_then_unload(client: TestClient, engine: FakeEngine, root: Path) -> None:
    alpha = model_id(client, "alpha")
    r = client.post(f"/api/models/{alpha}/load")
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Model loaded successfully" and r.json()["model"] == alpha
    # the same params an image job sends, so that job finds the context loaded
    assert engine.loads == [
        {
            "model": str(root / "checkpoints/alpha.safetensors"),
            "n_threads": 3,
            "lora_dir": str(root / "loras"),
            "embedding_dir": str(root / "embeddings"),
        }
    ]
    assert loaded_names(client) == ["alpha"]
    assert client.get("/api/status").json()["models"]["loaded_count"] == 1

    r = client.post("/api/models/alpha/unload")  # by name works too
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Model unloaded successfully", "model": alpha, "name": "alpha"}
    assert engine.loaded_model is None and loaded_names(client) == []
    assert client.get("/api/status").json()["models"]["loaded_count"] == 0


def test_failed_load_keeps_the_loaded_model(client: TestClient, engine: FakeEngine) -> None:
    assert client.post("/api/models/alpha/load").status_code == 200
    r = client.post("/api/models/broken/load")
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED" and "broken" in error["message"]
    assert loaded_names(client) == ["alpha"]


def test_load_refuses_unknown_and_non_loadable_models(client: TestClient) -> None:
    r = client.post("/api/models/nope/load")
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"
    r = client.post("/api/models/detail/load")  # a LoRA
    assert r.status_code == 400 and "lora" in r.json()["error"]["message"]


def test_unload_of_a_model_not_loaded_is_409(client: TestClient) -> None:
    r = client.post("/api/models/alpha/unload")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_NOT_LOADED"
    client.post("/api/models/alpha/load")
    r = client.post("/api/models/beta/unload")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_NOT_LOADED"


def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_unload_of_a_model_a_job_needs_is_409(client: TestClient, engine: FakeEngine) -> None:
    assert client.post("/api/models/alpha/load").status_code == 200
    job = {"prompt": "__slow__", "model_name": "alpha"}
    job_id = client.post("/api/generate/text2img", json=job).json()["job_id"]
    _wait(lambda: client.get(f"/api/queue/job/{job_id}").json()["status"] == "processing")
    r = client.post("/api/models/alpha/unload")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_IN_USE"
    assert engine.loaded_model is not None
    client.post("/api/queue/cancel", json={"job_id": job_id})
    _wait(lambda: client.get(f"/api/queue/job/{job_id}").json()["status"] == "cancelled")
    assert client.post("/api/models/alpha/unload").status_code == 200


def test_a_job_leaves_its_model_loaded(client: TestClient) -> None:
    job_id = client.post("/api/generate/text2img", json={"prompt": "x", "model_name": "beta"})
    job_id = job_id.json()["job_id"]
    _wait(lambda: client.get(f"/api/queue/job/{job_id}").json()["status"] == "completed")
    assert loaded_names(client) == ["beta"]


def test_sort_by_loaded_puts_the_loaded_model_first(client: TestClient) -> None:
    client.post("/api/models/beta/load")
    params = {"sort_by": "loaded", "type": "checkpoint"}
    listed = client.get("/api/models", params=params).json()
    assert [m["name"] for m in listed["models"]] == ["beta", "alpha", "broken"]
    assert listed["total"] == 3
    desc = client.get("/api/models", params={**params, "sort_order": "desc"}).json()
    assert [m["name"] for m in desc["models"]] == ["broken", "alpha", "beta"]
    page2 = client.get("/api/models", params={**params, "limit": 1, "page": 2}).json()
    assert [m["name"] for m in page2["models"]] == ["alpha"]
    bad = client.get("/api/models", params={**params, "sort_order": "up"})
    assert bad.status_code == 400


def test_batch_goes_on_after_errors(client: TestClient) -> None:
    r = client.post(
        "/api/models/batch", json={"action": "validate", "model_ids": ["alpha", "nope", "beta"]}
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert [x["success"] for x in data["results"]] == [True, False, True]
    assert data["results"][1]["error"]["code"] == "MODEL_NOT_FOUND"
    assert (data["succeeded"], data["failed"]) == (2, 1)

    r = client.post("/api/models/batch", json={"action": "load", "model_ids": ["broken", "alpha"]})
    results = r.json()["results"]
    assert results[0]["error"]["code"] == "MODEL_LOAD_FAILED" and results[1]["success"]
    assert loaded_names(client) == ["alpha"]

    r = client.post("/api/models/batch", json={"action": "unload", "model_ids": ["beta", "alpha"]})
    results = r.json()["results"]
    assert results[0]["error"]["code"] == "MODEL_NOT_LOADED" and results[1]["success"]
    assert loaded_names(client) == []

    r = client.post("/api/models/batch", json={"action": "hash", "model_ids": ["alpha"]})
    assert len(r.json()["results"][0]["result"]["sha256"]) == 64


def test_batch_body_is_checked(client: TestClient) -> None:
    for payload in ({"action": "delete", "model_ids": ["alpha"]}, {"action": "load"}):
        r = client.post("/api/models/batch", json=payload)
        assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"
