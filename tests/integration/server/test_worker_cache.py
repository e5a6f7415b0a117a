"""Several loaded models in the real worker: LRU switching without reloads (counted by the
worker's load counter), the memory budget, keep-alive unloads, and the API's 409/422 rules."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sdcpp.server import Settings, create_app
from sdcpp.server.worker import EngineClient

JOB = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0}


def _copies(tiny_path: Path, folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        target = folder / f"{name}.safetensors"
        try:
            os.link(tiny_path, target)  # another path, so another context, without a copy
        except OSError:
            shutil.copyfile(tiny_path, target)
        paths.append(str(target))
    return paths


def _run(client: EngineClient, out: Path, model: str) -> dict[str, Any]:
    final = client.run(out.name, "txt2img", {"model": model, **JOB}, str(out))
    assert final["type"] == "done", final
    return final


def test_switching_within_the_budget_reloads_nothing(tiny_path: Path, tmp_path: Path) -> None:
    a, b, c = _copies(tiny_path, tmp_path / "m", "a", "b", "c")
    settings = {"n_threads": 2, "max_loaded_models": 2}
    with EngineClient(settings) as client:
        assert client.load({"model": a})["type"] == "loaded"
        assert client.load({"model": b})["type"] == "loaded"
        assert client.load_count == 2 and client.loaded_models == [b, a]
        assert client.load({"model": a})["load_time"] == 0  # already loaded: no work
        for i, model in enumerate((a, b, a, b)):
            assert _run(client, tmp_path / f"j{i}", model)["result"]["load_time"] == 0
        assert client.load_count == 2  # four jobs over two models: no context was created
        assert client.loaded_models == [b, a]
        _run(client, tmp_path / "jc", c)  # a third model: the least recently used (a) goes
        assert client.load_count == 3 and client.loaded_models == [c, b]
        assert client.unload(b)["type"] == "unloaded"
        assert client.loaded_models == [c]


def test_memory_budget_and_keep_alive(tiny_path: Path, tmp_path: Path) -> None:
    a, b = _copies(tiny_path, tmp_path / "m", "a", "b")
    size_mb = os.path.getsize(a) / 2**20
    settings = {
        "n_threads": 2,
        "max_loaded_models": 3,
        "model_memory_mb": int(size_mb * 1.5),  # room for one of them
        "keep_alive": 1.0,
    }
    with EngineClient(settings) as client:
        assert client.load({"model": a})["type"] == "loaded"
        assert client.load({"model": b})["type"] == "loaded"
        assert client.loaded_models == [b]  # a did not fit beside it
        deadline = time.monotonic() + 20
        while client.loaded_models:  # nobody uses b: keep_alive unloads it
            assert time.monotonic() < deadline, client.loaded_models
            time.sleep(0.1)
        assert client.load_count == 2
        final = _run(client, tmp_path / "j", b)
        assert final["result"]["load_time"] > 0 and client.load_count == 3


@pytest.fixture
def api(tiny_path: Path, tmp_path: Path) -> Any:
    root = tmp_path / "data" / "models"
    _copies(tiny_path, root / "checkpoints", "a", "b")
    broken = root / "checkpoints/broken.safetensors"
    with open(tiny_path, "rb") as src:
        broken.write_bytes(src.read(os.path.getsize(tiny_path) // 2))  # truncated
    settings = Settings(data_dir=root.parent, threads=2, max_loaded_models=2, shutdown_grace=5)
    with TestClient(create_app(settings)) as client:
        yield client


def _loaded(client: TestClient) -> list[str]:
    models = client.get("/api/models", params={"limit": 0}).json()["models"]
    return sorted(m["name"] for m in models if m["loaded"])


def test_api_load_two_bad_model_and_unload_rules(api: TestClient) -> None:
    assert api.post("/api/models/a/load").status_code == 200
    assert api.post("/api/models/b/load").status_code == 200
    assert _loaded(api) == ["a", "b"]
    assert api.get("/api/status").json()["models"]["loaded_count"] == 2

    r = api.post("/api/models/broken/load")
    assert r.status_code == 422 and r.json()["error"]["code"] == "MODEL_LOAD_FAILED"
    assert "truncated" in r.json()["error"]["message"]
    assert _loaded(api) == ["a", "b"]  # both still loaded, and usable without a reload
    r = api.post("/api/generate/text2img", json={"model_name": "a", **JOB})
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 120
    while (job := api.get(f"/api/queue/job/{job_id}").json())["status"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["status"] == "completed" and job["result"]["load_time"] == 0, job

    # a job that needs b is queued behind a slow one: b cannot be unloaded until it ran
    slow = api.post("/api/generate/text2img", json={"model_name": "a", **JOB, "steps": 8})
    needs_b = api.post("/api/generate/text2img", json={"model_name": "b", **JOB})
    r = api.post("/api/models/b/unload")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_IN_USE"
    for job_id in (slow.json()["job_id"], needs_b.json()["job_id"]):
        while api.get(f"/api/queue/job/{job_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline + 120
            time.sleep(0.1)
    assert api.post("/api/models/b/unload").status_code == 200
    assert _loaded(api) == ["a"]  # unloading one model keeps the other
    r = api.post("/api/models/b/unload")
    assert r.status_code == 409 and r.json()["error"]["code"] == "MODEL_NOT_LOADED"
