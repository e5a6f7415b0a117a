"""POST /api/models/convert: validation (nothing queued or written on a refusal) and the job
lifecycle, with the real ConvertRunner spawning a converter child that has no engine."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_converter import PAYLOAD, fake_convert
from fake_engine import FakeEngine
from starlette.requests import Request
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.errors import InvalidArgument
from sdcpp.registry import ModelRegistry
from sdcpp.server import Settings, conversion, create_app
from sdcpp.server.routers.models import caller_is_admin
from sdcpp.server.worker.converter import ConvertRunner


def _weights(path: Path, shape: tuple[int, ...] = (64, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"w.weight": np.zeros(shape, np.float16), "w.bias": np.zeros(shape[0], np.float16)}
    _safetensors.save(path, tensors)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    for name in ("alpha", "slow", "crash", "fail"):
        _weights(root / f"checkpoints/{name}.safetensors")
    _weights(root / "vae/ae.safetensors")
    (root / "presets").mkdir(parents=True)
    (root / "presets/p.json").write_text("{}")
    return root


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=root.parent, shutdown_grace=0.5)
    app = create_app(settings, engine=FakeEngine(), converter=None)
    with TestClient(app) as c:
        registry = app.state.registry
        runner = ConvertRunner(registry, target=fake_convert)
        app.state.jobs.runners["convert"] = app.state.converter = runner
        yield c


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _wait(client: TestClient, job_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/api/queue/job/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def _convert(client: TestClient, **body: Any) -> Any:
    return client.post("/api/models/convert", json={"quantization_type": "q8_0", **body})


def test_convert_job_registers_the_output(client: TestClient, root: Path) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()  # the greeting
        r = _convert(client, model_name="alpha")
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["output_path"] == "checkpoints/alpha-q8_0.gguf"
        assert body["quantization_type"] == "q8_0" and body["estimated_bytes"] > 0
        updates: list[dict[str, Any]] = []
        while not updates or updates[-1]["status"] not in ("completed", "failed"):
            message = ws.receive_json()
            if message["type"] == "job_update" and message["data"]["job_id"] == body["job_id"]:
                updates.append(message["data"])
    job = updates[-1]
    assert job["status"] == "completed", job
    assert job["type"] == "convert"
    steps = [(u["phase"], u["current_step"], u["total_steps"]) for u in updates if "phase" in u]
    assert ("converting", 3, 3) in steps  # tensors done/total reached subscribers
    assert (root / "checkpoints/alpha-q8_0.gguf").read_bytes() == PAYLOAD
    result = job["result"]
    assert result["output_path"] == "checkpoints/alpha-q8_0.gguf"
    assert result["quantization_type"] == "q8_0" and result["size"] == len(PAYLOAD)
    # registered at once: listed without a refresh, under the id the result names
    listed = client.get("/api/models", params={"search": "alpha-q8_0"}).json()["models"]
    assert [m["id"] for m in listed] == [result["model_id"]]
    assert not [p for p in _files(root) if ".convert-" in p]  # the staging folder is gone
    queued = client.get("/api/queue/status").json()["queue"]["jobs"]
    assert any(j["id"] == body["job_id"] and j["type"] == "convert" for j in queued)


@pytest.mark.parametrize(
    ("asked", "engine_type"),
    [("Q8_0", "q8_0"), ("q4_k", "q4_K"), ("Q4_K_S", "q4_K"), ("q6_k_s", "q6_K"), ("fp16", "f16")],
)
def test_quantization_spellings(client: TestClient, asked: str, engine_type: str) -> None:
    r = _convert(client, model_name="alpha", quantization_type=asked)
    assert r.status_code == 202, r.text
    assert r.json()["quantization_type"] == engine_type
    assert r.json()["output_path"] == f"checkpoints/alpha-{engine_type.lower()}.gguf"


@pytest.mark.parametrize(
    ("asked", "says"),
    [("q4_k_m", "mixed recipe"), ("Q5_K_L", "mixed recipe"), ("q9_0", "unknown")],
)
def test_refused_quantization_lists_the_choices(
    client: TestClient, root: Path, asked: str, says: str
) -> None:
    before = _files(root)
    r = _convert(client, model_name="alpha", quantization_type=asked)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert says in message and "q4_K" in message and "q4_k_s" in message
    assert _files(root) == before


@pytest.mark.parametrize(
    ("output_path", "says"),
    [
        ("/tmp/out.gguf", "inside the models directory"),
        ("../out.gguf", "'..'"),
        ("checkpoints/../../out.gguf", "'..'"),
        ("out.safetensors", "end in .gguf"),
        ("presets/out.gguf", "not inside a model folder"),
        ("checkpoints/nowhere/out.gguf", "does not exist"),
        ("checkpoints/escape/out.gguf", "outside the models directory"),
        ("checkpoints/alpha.safetensors", "end in .gguf"),
        (".hidden.gguf", "hidden"),
        ("C:\\models\\out.gguf", "inside the models directory"),
    ],
)
def test_refused_output_paths_write_nothing(
    client: TestClient, root: Path, tmp_path: Path, output_path: str, says: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "checkpoints/escape").symlink_to(outside)  # a folder link leaving the models dir
    before = _files(root)
    r = _convert(client, model_name="alpha", output_path=output_path)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_PARAMETERS"
    assert says in r.json()["error"]["message"]
    assert _files(root) == before and not list(outside.iterdir())
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []


def test_existing_output_needs_overwrite(client: TestClient, root: Path) -> None:
    target = root / "checkpoints/mine.gguf"
    target.write_bytes(b"old")
    r = _convert(client, model_name="alpha", output_path="mine.gguf")
    assert r.status_code == 400 and "exists" in r.json()["error"]["message"]
    assert target.read_bytes() == b"old"
    # no auth configured: the caller is an admin, so overwrite is honoured
    r = _convert(client, model_name="alpha", output_path="mine.gguf", overwrite=True)
    assert r.status_code == 202, r.text
    assert _wait(client, r.json()["job_id"], ("completed", "failed"))["status"] == "completed"
    assert target.read_bytes() == PAYLOAD


def test_overwrite_is_for_admins_only(root: Path) -> None:
    registry = ModelRegistry(root)
    (root / "checkpoints/mine.gguf").write_bytes(b"old")
    with pytest.raises(InvalidArgument, match="only an admin"):
        conversion.plan(
            registry,
            model_name="alpha",
            quantization_type="q8_0",
            output_path="mine.gguf",
            overwrite=True,
            is_admin=False,
        )
    # the hook the auth middleware feeds: no user in the scope means no auth, i.e. admin
    scope: dict[str, Any] = {"type": "http", "headers": []}
    assert caller_is_admin(Request(scope))
    assert not caller_is_admin(Request({**scope, "user": object()}))
    admin = type("User", (), {"is_admin": True})()
    assert caller_is_admin(Request({**scope, "user": admin}))


def test_the_input_itself_is_never_the_output(client: TestClient, root: Path) -> None:
    gguf = root / "checkpoints/q.gguf"
    gguf.write_bytes(PAYLOAD)
    client.post("/api/models/refresh")
    r = _convert(client, model_name="q", output_path="q.gguf", overwrite=True)
    assert r.status_code == 400 and "input file itself" in r.json()["error"]["message"]


def test_unknown_model_vae_and_text_files(client: TestClient) -> None:
    r = _convert(client, model_name="nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"
    r = _convert(client, model_name="alpha", vae="nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    r = _convert(client, model_name="p")
    assert r.status_code == 400 and "not model weights" in r.json()["error"]["message"]
    r = client.post("/api/models/convert", json={"model_name": "alpha"})
    assert r.status_code == 422  # the schema: quantization_type is required


def test_vae_and_rules_reach_the_job(client: TestClient, root: Path) -> None:
    r = _convert(client, model_name="alpha", vae="ae", tensor_type_rules="^w\\.=q4_k, bias=F16")
    assert r.status_code == 202, r.text
    job = client.get(f"/api/queue/job/{r.json()['job_id']}").json()
    assert job["type"] == "convert"
    store = client.app.state.jobs.store  # type: ignore[attr-defined]
    params = store.get(r.json()["job_id"]).params
    assert params["vae"] == str((root / "vae/ae.safetensors").resolve())
    assert params["tensor_type_rules"] == "^w\\.=q4_K,bias=f16"


@pytest.mark.parametrize(
    ("rules", "says"),
    [("w=q9", "unknown type"), ("[=q8_0", "bad regex"), ("q8_0", "not 'regex=type'")],
)
def test_refused_rules(client: TestClient, rules: str, says: str) -> None:
    r = _convert(client, model_name="alpha", tensor_type_rules=rules)
    assert r.status_code == 400 and says in r.json()["error"]["message"]


def test_insufficient_storage(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        free = 1024

    monkeypatch.setattr(conversion.shutil, "disk_usage", lambda _path: Usage)
    before = _files(root)
    r = _convert(client, model_name="alpha")
    assert r.status_code == 507, r.text
    assert r.json()["error"]["code"] == "INSUFFICIENT_STORAGE"
    assert _files(root) == before


def test_estimate_counts_quantized_and_kept_tensors(tmp_path: Path) -> None:
    path = _weights(tmp_path / "m.safetensors", (64, 64))
    q8 = conversion.estimate_output_bytes([path], conversion.parse_type("q8_0"))
    f32 = conversion.estimate_output_bytes([path], conversion.parse_type("f32"))
    headers = 2 * 96 + len("w.weight") + len("w.bias")
    assert q8 == headers + 64 * 64 // 32 * 34 + 64 * 2  # the bias keeps its f16 bytes
    assert f32 == headers + 64 * 64 * 4 + 64 * 4


def test_cancel_queued_and_running(client: TestClient, root: Path) -> None:
    running = _convert(client, model_name="slow").json()["job_id"]
    queued = _convert(client, model_name="alpha").json()["job_id"]
    job = _wait(client, running, ("processing",))
    assert job["type"] == "convert"
    staging = root / f"checkpoints/.convert-{running}"
    deadline = time.monotonic() + 30
    while not (staging / "slow-q8_0.gguf").exists():  # the child is mid-write
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = client.post("/api/queue/cancel", json={"job_id": queued})
    assert r.json()["state"] == "cancelled"
    r = client.post("/api/queue/cancel", json={"job_id": running})
    assert r.json()["state"] == "cancelling"
    assert _wait(client, running, ("cancelled", "failed", "completed"))["status"] == "cancelled"
    assert _wait(client, queued, ("cancelled",))["status"] == "cancelled"
    assert not staging.exists()
    assert not (root / "checkpoints/slow-q8_0.gguf").exists()
    assert not (root / "checkpoints/alpha-q8_0.gguf").exists()


def test_a_crashing_converter_fails_the_job_only(client: TestClient, root: Path) -> None:
    crashed = _convert(client, model_name="crash").json()["job_id"]
    failed = _convert(client, model_name="fail").json()["job_id"]
    job = _wait(client, crashed, ("completed", "failed"))
    assert job["status"] == "failed" and "converter crashed: SIGABRT" in job["error"]
    job = _wait(client, failed, ("completed", "failed"))
    assert job["status"] == "failed" and job["error"] == "unsupported tensor layout"
    assert not [p for p in _files(root) if p.endswith("q8_0.gguf") or ".convert-" in p]
    assert client.get("/health").status_code == 200  # the API never noticed


def test_same_output_cannot_be_queued_twice(client: TestClient) -> None:
    first = _convert(client, model_name="slow")
    assert first.status_code == 202
    again = _convert(client, model_name="slow")
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONVERSION_IN_PROGRESS"
    client.post("/api/queue/cancel", json={"job_id": first.json()["job_id"]})
    _wait(client, first.json()["job_id"], ("cancelled",))


def test_stale_staging_folders_are_removed_at_start(root: Path) -> None:
    stale = root / "checkpoints/.convert-0123"
    stale.mkdir(parents=True)
    (stale / "x.gguf").write_bytes(b"partial")
    settings = Settings(data_dir=root.parent, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())):
        assert not stale.exists()
    assert os.path.isdir(root / "checkpoints")


def test_a_full_disk_answer_names_no_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as _shutil

    from sdcpp.server import conversion
    from sdcpp.server.errors import lookup
    from sdcpp.server.exceptions import InsufficientStorage

    folder = tmp_path / "deep" / "models" / "checkpoints"
    folder.mkdir(parents=True)
    usage = _shutil.disk_usage(folder)._replace(free=1024)
    monkeypatch.setattr(conversion.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(InsufficientStorage) as refused:
        conversion.check_free_space(folder, 10 * 2**20)
    assert lookup(refused.value)[:2] == (507, "INSUFFICIENT_STORAGE")
    assert "'checkpoints' folder" in refused.value.message
    assert str(tmp_path) not in refused.value.message
