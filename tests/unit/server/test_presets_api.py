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


def test_deleting_a_shared_preset_without_auth(client: TestClient, tmp_path: Path) -> None:
    r = client.delete("/api/presets/presets/fast.json")
    assert r.status_code == 204, r.text
    assert not (tmp_path / "data" / "models" / "presets" / "fast.json").exists()
    listed = [p["id"] for p in client.get("/api/presets").json()["presets"]]
    assert "presets/fast.json" not in listed
    again = client.delete("/api/presets/presets/fast.json")
    assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "preset_id",
    [
        # dot segments encoded, so that the client does not fold them away before sending
        "presets/%2E%2E/checkpoints/tiny.safetensors",  # outside the folder, no preset type
        "presets/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "presets/%2E%2E/%2E%2E/elsewhere.json",
        "checkpoints/tiny.safetensors",  # another model folder
        "presets/no-such.json",
        "own/fast.json",  # anonymous: no folder of its own
    ],
)
def test_deleting_anything_but_a_preset_is_refused(client: TestClient, preset_id: str) -> None:
    r = client.delete(f"/api/presets/{preset_id}")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "NOT_FOUND"
    assert client.get("/api/models").status_code == 200
    assert (client.app.state.registry.root / "checkpoints" / "tiny.safetensors").exists()  # type: ignore[attr-defined]


def test_users_delete_their_own_presets_and_only_admins_shared_ones(tmp_path: Path) -> None:
    from sdcpp.server.auth import accounts

    models = _models(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", shutdown_grace=0.5, auth=("api-key",))
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        store = c.app.state.auth.store  # type: ignore[attr-defined]
        headers = {}
        for name, role in (("ann", "user"), ("ben", "user"), ("root", "admin")):
            store.add_user(name, role=role)
            headers[name] = {"X-API-Key": accounts.create_key(store, name, "t")[0]}
        body = {"name": "mine", "parameters": {"steps": 3}}
        assert c.post("/api/presets", json=body, headers=headers["ann"]).status_code == 201
        assert c.post("/api/presets", json=body, headers=headers["ben"]).status_code == 201
        refused = c.delete("/api/presets/presets/fast.json", headers=headers["ann"])
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "INSUFFICIENT_PERMISSIONS"
        assert (models / "presets" / "fast.json").exists()
        assert c.delete("/api/presets/own/mine.json", headers=headers["ann"]).status_code == 204
        ann = [p["id"] for p in c.get("/api/presets", headers=headers["ann"]).json()["presets"]]
        ben = [p["id"] for p in c.get("/api/presets", headers=headers["ben"]).json()["presets"]]
        assert "own/mine.json" not in ann and "own/mine.json" in ben  # ben's is untouched
        assert c.delete("/api/presets/own/mine.json").status_code == 401
        ok = c.delete("/api/presets/presets/fast.json", headers=headers["root"])
        assert ok.status_code == 204 and not (models / "presets" / "fast.json").exists()


def test_upload_targets_are_what_the_upload_route_takes(client: TestClient) -> None:
    targets = {t["type"]: t for t in client.get("/api/models/upload-targets").json()["targets"]}
    assert targets["lora"]["folder"] == "loras" and targets["lora"]["subfolders"] == []
    encoders = targets["text_encoder"]
    assert "t5xxl" in encoders["subfolders"] and ".safetensors" in encoders["extensions"]
    body = _safetensors_bytes()
    for sub in encoders["subfolders"]:  # each offered subfolder is one the route accepts
        r = client.post(
            f"/api/models/upload?type=text_encoder&filename=te-{sub}.safetensors&subfolder={sub}",
            content=body,
        )
        assert r.status_code == 201, r.text
    refused = client.post(
        "/api/models/upload?type=lora&filename=x.safetensors&subfolder=t5xxl", content=body
    )
    assert refused.status_code == 400  # not offered for loras: refused too


def _safetensors_bytes() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.safetensors"
        _safetensors.save(path, {"w": np.zeros((2, 2), np.float16)})
        return path.read_bytes()
