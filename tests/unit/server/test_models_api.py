"""Model management endpoints over a models dir of small header-valid files (real detection)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient
from test_detect import wan
from test_plan import put, umt5, wan_vae

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    (root / "checkpoints").mkdir(parents=True)
    _safetensors.save(
        root / "checkpoints/tiny.safetensors",
        {"a": np.zeros(4, np.float16), "b": np.zeros(2, np.float16), "c": np.zeros(1, np.float32)},
    )
    put(root, "diffusion_models/wan.safetensors", wan(2, 64, 16))  # BF16, needs vae + t5xxl
    put(root, "text_encoders/umt5.safetensors", umt5())
    put(root, "checkpoints/misplaced_vae.safetensors", wan_vae(16))  # a VAE in checkpoints/
    broken = put(root, "checkpoints/broken.safetensors", wan_vae(16))
    with broken.open("r+b") as f:  # the header promises more data than the file holds
        f.truncate(broken.stat().st_size - 1)
    return root


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=root.parent, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def model_id(client: TestClient, name: str) -> str:
    listed = client.get("/api/models", params={"search": name, "limit": 0}).json()["models"]
    (entry,) = [m for m in listed if m["name"] == name]
    return str(entry["id"])


def test_model_detail_has_detection_requirements_and_missing_companions(
    client: TestClient,
) -> None:
    wan_id = model_id(client, "wan")
    detail = client.get(f"/api/models/{wan_id}").json()
    assert detail["model"]["id"] == wan_id and detail["model"]["type"] == "diffusion_model"
    assert detail["detection"]["id"] == "wan2.1_t2v"
    assert detail["detection"]["dtypes"] == {"BF16": len(wan(2, 64, 16))}
    assert detail["requirements"] == ["vae", "t5xxl"]
    assert detail["missing_companions"] == ["vae"]
    plan = detail["plan"]
    assert plan["load_as"] == "diffusion_model"
    assert plan["companions"] == {"t5xxl": "text_encoders/umt5.safetensors"}
    assert plan["missing"][0]["slot"] == "vae" and "Wan 2.1 VAE" in plan["missing"][0]["hint"]
    assert "pass vae=" not in plan["missing"][0]["hint"]  # the library's keyword, not REST's
    assert plan["recommended"]["video_frames"] == 33
    # by name too; a component has no plan
    assert client.get("/api/models/wan").json()["model"]["id"] == wan_id
    umt5_detail = client.get("/api/models/umt5").json()
    assert umt5_detail["detection"]["name"] == "UMT5-XXL encoder"
    assert umt5_detail["plan"] is None and umt5_detail["missing_companions"] == []


def test_unknown_model_is_404_everywhere(client: TestClient) -> None:
    for response in (
        client.get("/api/models/nope"),
        client.post("/api/models/hash", json={"model_id": "nope"}),
        client.post("/api/models/validate", json={"model_id": "nope"}),
    ):
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "MODEL_NOT_FOUND" and "nope" in error["message"]
        assert error["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("payload", [{}, {"model_id": ""}, {"model_id": "tiny", "x": 1}])
def test_bad_bodies_are_422(client: TestClient, payload: dict[str, str]) -> None:
    for path in ("/api/models/hash", "/api/models/validate"):
        r = client.post(path, json=payload)
        assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_directories_report_state_and_file_counts(client: TestClient, root: Path) -> None:
    data = client.get("/api/models/directories").json()
    assert data["root"] == {"path": str(root), "exists": True, "writable": True}
    folders = {d["folder"]: d for d in data["directories"]}
    assert folders["checkpoints"]["files"] == 3 and folders["checkpoints"]["exists"]
    assert folders["checkpoints"]["type"] == "checkpoint"
    assert folders["text_encoders"]["files"] == 1 and folders["loras"]["files"] == 0
    assert folders["text_encoders/t5xxl"]["files"] == 0  # a subfolder: counted on its own


def test_stats_count_types_and_architectures(client: TestClient) -> None:
    stats = client.get("/api/models/stats").json()
    assert stats["total"]["count"] == 5
    assert stats["by_type"]["checkpoint"]["count"] == 3
    assert stats["by_type"]["diffusion_model"]["count"] == 1
    assert stats["by_architecture"] == {"t5xxl": 1, "unknown": 2, "vae": 1, "wan2.1_t2v": 1}
    assert stats["detection_errors"] == 1 and stats["hashed"] == 0


def test_hash_is_sha256_and_cached(client: TestClient, root: Path) -> None:
    expected = hashlib.sha256((root / "checkpoints/tiny.safetensors").read_bytes()).hexdigest()
    first = client.post("/api/models/hash", json={"model_id": "tiny"}).json()
    assert first["sha256"] == expected and first["short_hash"] == expected[:10]
    assert first["path"] == "checkpoints/tiny.safetensors" and first["cached"] is False
    second = client.post("/api/models/hash", json={"model_id": first["model_id"]}).json()
    assert second["sha256"] == expected and second["cached"] is True
    assert client.get("/api/models/stats").json()["hashed"] == 1


def test_validate_a_good_checkpoint_reports_dtypes(client: TestClient) -> None:
    report = client.post("/api/models/validate", json={"model_id": "tiny"}).json()
    assert report["valid"] is True, report
    assert [c["name"] for c in report["checks"]] == ["header", "companions"]
    dtypes = report["dtypes"]
    assert (dtypes["tensor_count"], dtypes["parameters"], dtypes["primary"]) == (3, 7, "F16")
    assert dtypes["by_dtype"] == [
        {"dtype": "F16", "tensors": 2, "share": 0.6667},
        {"dtype": "F32", "tensors": 1, "share": 0.3333},
    ]
    assert report["warnings"] == ["architecture not recognised: the engine may still load it"]


def test_validate_finds_truncation_missing_companions_and_misplaced_files(
    client: TestClient,
) -> None:
    broken = client.post("/api/models/validate", json={"model_id": "broken"}).json()
    assert broken["valid"] is False and broken["dtypes"] is None
    (header,) = broken["checks"]
    assert header["name"] == "header" and not header["ok"] and "truncated" in header["message"]

    wan_report = client.post("/api/models/validate", json={"model_id": "wan"}).json()
    assert wan_report["valid"] is False
    checks = {c["name"]: c for c in wan_report["checks"]}
    assert checks["header"]["ok"] and not checks["companions"]["ok"]
    assert checks["companions"]["message"].startswith("vae: put a Wan 2.1 VAE")
    tensors = len(wan(2, 64, 16))
    assert wan_report["dtypes"]["by_dtype"] == [{"dtype": "BF16", "tensors": tensors, "share": 1.0}]

    misplaced = client.post("/api/models/validate", json={"model_id": "misplaced_vae"}).json()
    assert any("detected as a vae" in w for w in misplaced["warnings"])


def test_routes_do_not_shadow_each_other(client: TestClient) -> None:
    # "stats" and "directories" are routes, not model ids; types/refresh stay native's
    assert "by_type" in client.get("/api/models/stats").json()
    assert "checkpoint" in client.get("/api/models/types").json()["types"]
    assert client.post("/api/models/refresh").status_code == 200
