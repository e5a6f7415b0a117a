"""Presets, prompt templates and quantization choices (routers/presets.py, server/templates.py)
over a fake engine: seed 002's presets/, prompts/ and neg_prompts/ folders, read and saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app
from sdcpp.server.conversion import choices


def _models(tmp_path: Path) -> Path:
    models = tmp_path / "data" / "models"
    (models / "checkpoints").mkdir(parents=True)
    _safetensors.save(models / "checkpoints" / "tiny.safetensors", {"x": np.zeros(2, np.float16)})
    (models / "presets").mkdir()
    (models / "presets" / "fast.json").write_text(
        json.dumps({"name": "Fast draft", "parameters": {"steps": 4, "cfg_scale": 1.5}})
    )
    (models / "presets" / "flat.json").write_text(json.dumps({"steps": 30, "sampler": "euler"}))
    (models / "presets" / "portrait.yaml").write_text(
        "# a comment\nwidth: 512\nheight: 768\nsampling_method: 'dpm++2m'\nhires: true\n"
    )
    (models / "presets" / "nested.yml").write_text("hires:\n  scale: 2\n")
    (models / "presets" / "broken.json").write_text("{not json")
    (models / "prompts").mkdir()
    (models / "prompts" / "lighthouse.txt").write_text("a lighthouse at dusk, oil painting\n")
    (models / "prompts" / "styles.json").write_text(
        json.dumps(["watercolor", {"name": "Noir", "prompt": "film noir, high contrast"}])
    )
    (models / "neg_prompts").mkdir()
    (models / "neg_prompts" / "common.txt").write_text("blurry, low quality")
    return models


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    _models(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def test_presets_are_listed_with_their_parameters(client: TestClient) -> None:
    r = client.get("/api/presets")
    assert r.status_code == 200
    by_id = {p["id"]: p for p in r.json()["presets"]}
    assert by_id["presets/fast.json"]["name"] == "Fast draft"
    assert by_id["presets/fast.json"]["parameters"] == {"steps": 4, "cfg_scale": 1.5}
    assert by_id["presets/flat.json"]["parameters"] == {"steps": 30, "sampler": "euler"}
    assert by_id["presets/portrait.yaml"]["parameters"] == {
        "width": 512,
        "height": 768,
        "sampling_method": "dpm++2m",
        "hires": True,
    }
    assert {p["scope"] for p in by_id.values()} == {"shared"}
    # a bad file is listed with its error, and hides nothing else
    assert "broken.json" in by_id["presets/broken.json"]["error"]
    assert "no nesting" in by_id["presets/nested.yml"]["error"]
    assert "parameters" not in by_id["presets/broken.json"]


def test_prompt_templates_are_listed_with_their_text(client: TestClient) -> None:
    data = client.get("/api/prompts").json()
    prompts = {p["id"]: p for p in data["prompts"]}
    assert prompts["prompts/lighthouse.txt"] == {
        "id": "prompts/lighthouse.txt",
        "name": "lighthouse",
        "text": "a lighthouse at dusk, oil painting",
    }
    assert prompts["prompts/styles.json"]["text"] == "watercolor"
    assert prompts["prompts/styles.json#2"] == {
        "id": "prompts/styles.json#2",
        "name": "Noir",
        "text": "film noir, high contrast",
    }
    assert [n["text"] for n in data["neg_prompts"]] == ["blurry, low quality"]


def test_saving_a_preset_without_auth_writes_the_shared_folder(
    client: TestClient, tmp_path: Path
) -> None:
    body = {"name": "my set", "parameters": {"steps": 12, "prompt": "x"}, "description": "d"}
    r = client.post("/api/presets", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "presets/my set.json" and r.json()["scope"] == "shared"
    saved = json.loads((tmp_path / "data" / "models" / "presets" / "my set.json").read_text())
    assert saved == {
        "name": "my set",
        "parameters": {"steps": 12, "prompt": "x"},
        "description": "d",
    }
    listed = {p["id"]: p for p in client.get("/api/presets").json()["presets"]}
    assert listed["presets/my set.json"]["parameters"] == {"steps": 12, "prompt": "x"}
    again = client.post("/api/presets", json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "PRESET_EXISTS"
    body["parameters"] = {"steps": 13}
    assert client.post("/api/presets", json={**body, "overwrite": True}).status_code == 201


@pytest.mark.parametrize("name", ["../escape", "a/b", " lead", ".hidden", "x" * 101, ""])
def test_a_preset_name_with_path_parts_is_refused(client: TestClient, name: str) -> None:
    r = client.post("/api/presets", json={"name": name, "parameters": {"steps": 1}})
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] in ("INVALID_PARAMETERS", "VALIDATION_ERROR")


def test_a_preset_with_nested_parameters_is_refused(client: TestClient) -> None:
    r = client.post("/api/presets", json={"name": "n", "parameters": {"loras": [1, 2]}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_users_save_into_their_own_folder_and_see_only_theirs(tmp_path: Path) -> None:
    from sdcpp.server.auth import accounts

    _models(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5, auth=("api-key",))
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        store = c.app.state.auth.store  # type: ignore[attr-defined]
        headers = {}
        for name in ("ann", "ben"):
            store.add_user(name, role="user")
            headers[name] = {"X-API-Key": accounts.create_key(store, name, "t")[0]}
        r = c.post(
            "/api/presets",
            json={"name": "mine", "parameters": {"steps": 3}},
            headers=headers["ann"],
        )
        assert r.status_code == 201, r.text
        assert r.json()["scope"] == "own" and r.json()["id"] == "own/mine.json"
        assert not (tmp_path / "data" / "models" / "presets" / "mine.json").exists()
        ann = [p["id"] for p in c.get("/api/presets", headers=headers["ann"]).json()["presets"]]
        ben = [p["id"] for p in c.get("/api/presets", headers=headers["ben"]).json()["presets"]]
        assert "own/mine.json" in ann and "own/mine.json" not in ben
        assert "presets/fast.json" in ann and "presets/fast.json" in ben  # shared: everyone
        anonymous = c.post("/api/presets", json={"name": "x", "parameters": {}})
        assert anonymous.status_code == 401


def test_quantization_choices_are_the_converters(client: TestClient) -> None:
    data = client.get("/api/models/quantizations").json()
    assert data["quantization_types"] == choices()
    assert data["default"] in data["quantization_types"]
    # the literal path wins over /api/models/{model_id}
    assert client.get("/api/models/tiny").status_code == 200
