"""Path traversal: every route that takes a name (a path parameter or a body field naming a
model, companion, directory or file) refuses every spelling that would leave its folder, and
nothing outside the data dir is read, queued or written.

The target is a real, header-valid model file outside the models dir, so a route that
followed the path would succeed (and the test would see it), not merely fail to parse.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app

SECRET = b"secret-outside-the-data-dir"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path, str]]:
    root = tmp_path_factory.mktemp("traversal")
    outside = root / "outside"
    outside.mkdir()
    _safetensors.save(outside / "secret.safetensors", {"x": np.zeros(2, np.float16)})
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "loras").mkdir()
    data = root / "data"
    (data / "models" / "checkpoints").mkdir(parents=True)
    _safetensors.save(data / "models" / "checkpoints" / "tiny.safetensors", {"x": np.zeros(2)})
    settings = Settings(data_dir=data, max_queue=1000, shutdown_grace=0.5)
    with TestClient(create_app(settings, engine=FakeEngine())) as client:
        r = client.post("/api/generate/text2img", json={"prompt": "x", "steps": 1})
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 10
        while client.get(f"/api/queue/job/{job_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield client, outside, job_id


def spellings(outside: Path, stem: str) -> list[str]:
    """Ways to name ``outside/stem`` from inside ``data/models/<type>/``."""
    return [
        f"../../../outside/{stem}",
        f"../../outside/{stem}",
        f"checkpoints/../../../outside/{stem}",
        str(outside / stem),
        f"..\\..\\..\\outside\\{stem}",
        f"%2e%2e/%2e%2e/%2e%2e/outside/{stem}",
        f"....//....//....//outside/{stem}",
        f"../../../outside/{stem}\x00.safetensors",
    ]


def _nothing_points_outside(client: TestClient) -> None:
    for job in client.app.state.jobs.store.list(limit=1000):  # type: ignore[attr-defined]
        assert "outside" not in repr(job.params), job.params


# body field -> (route, the rest of a valid body)
GENERATE = ("/api/generate/text2img", {"prompt": "x", "steps": 1})
BODY_FIELDS: list[tuple[str, tuple[str, dict[str, Any]], str]] = [
    ("model_name", GENERATE, "secret.safetensors"),
    ("vae_path", GENERATE, "secret.safetensors"),
    ("clip_l_path", GENERATE, "secret.safetensors"),
    ("clip_g_path", GENERATE, "secret.safetensors"),
    ("t5xxl_path", GENERATE, "secret.safetensors"),
    ("llm_path", GENERATE, "secret.safetensors"),
    ("taesd_path", GENERATE, "secret.safetensors"),
    ("lora_model_dir", GENERATE, "loras"),
    ("embedding_dir", GENERATE, "loras"),
    ("model_id", ("/api/models/validate", {}), "secret.safetensors"),
    ("model_id", ("/api/models/hash", {}), "secret.safetensors"),
    ("model_name", ("/api/models/convert", {"quantization_type": "q8_0"}), "secret.safetensors"),
    ("model_name", ("/api/estimate", {}), "secret.safetensors"),
    ("model_name", ("/api/v1/generate", {"prompt": "x", "steps": 1}), "secret.safetensors"),
]


@pytest.mark.parametrize(("field", "route", "stem"), BODY_FIELDS)
def test_body_fields_refuse_names_outside_the_models_dir(
    world: tuple[TestClient, Path, str], field: str, route: tuple[str, dict[str, Any]], stem: str
) -> None:
    client, outside, _ = world
    path, rest = route
    for name in spellings(outside, stem):
        r = client.post(path, json={**rest, field: name})
        assert r.status_code in (400, 403, 404, 422), (name, r.status_code, r.text)
        if not Path(name).is_absolute():  # the resolved path is never echoed back
            assert str(outside) not in r.text
    _nothing_points_outside(client)


def test_lora_tags_and_structured_loras_stay_in_the_lora_dir(
    world: tuple[TestClient, Path, str],
) -> None:
    client, outside, _ = world
    for name in spellings(outside, "secret"):
        for body in (
            {"prompt": f"<lora:{name}:1> x", "steps": 1},
            {"prompt": "x", "steps": 1, "loras": [{"name": name, "weight": 1}]},
        ):
            r = client.post("/api/generate/text2img", json=body)
            assert r.status_code in (400, 404, 422), (name, r.text)
    _nothing_points_outside(client)


def test_conversion_output_cannot_leave_the_models_dir(
    world: tuple[TestClient, Path, str],
) -> None:
    client, outside, _ = world
    for name in spellings(outside, "written.gguf"):
        body = {"model_name": "tiny", "quantization_type": "q8_0", "output_path": name}
        r = client.post("/api/models/convert", json=body)
        assert r.status_code in (400, 403, 404, 422), (name, r.text)
    assert not list(outside.rglob("written*"))


@pytest.mark.parametrize(
    "template",
    [
        "/api/models/{}",
        "/api/models/{}/load",
        "/api/models/{}/unload",
        "/v1/models/{}",
    ],
)
def test_model_path_parameters_refuse_traversal(
    world: tuple[TestClient, Path, str], template: str
) -> None:
    client, outside, _ = world
    method = client.post if template.endswith(("load", "unload")) else client.get
    for name in spellings(outside, "secret.safetensors"):
        r = method(template.format(quote(name, safe="")))
        assert r.status_code in (400, 403, 404, 422), (name, r.status_code, r.text)
        if not Path(name).is_absolute():
            assert str(outside) not in r.text


@pytest.mark.parametrize(
    "template", ["/api/queue/job/{job}/output/{name}", "/api/v1/jobs/{job}/output/{name}"]
)
def test_output_file_names_never_leave_the_job_folder(
    world: tuple[TestClient, Path, str], template: str
) -> None:
    client, outside, job_id = world
    for name in [*spellings(outside, "secret.txt"), "../../../../../../etc/passwd"]:
        for encoded in (quote(name, safe=""), quote(name, safe="/")):
            r = client.get(template.format(job=job_id, name=encoded))
            assert r.status_code in (400, 403, 404, 422), (name, r.status_code)
            assert SECRET not in r.content and b"root:" not in r.content


def test_job_ids_are_not_paths(world: tuple[TestClient, Path, str]) -> None:
    client, outside, _ = world
    for name in spellings(outside, "secret.txt"):
        for template in ("/api/queue/job/{}", "/api/queue/job/{}/preview", "/api/events/{}"):
            r = client.get(template.format(quote(name, safe="")))
            assert r.status_code in (400, 404, 422), (template, name, r.status_code)
            assert SECRET not in r.content


def test_static_ui_paths_stay_in_the_ui_folder(world: tuple[TestClient, Path, str]) -> None:
    client, outside, _ = world
    for name in [*spellings(outside, "secret.txt"), "../../../../../../etc/passwd"]:
        for encoded in (quote(name, safe=""), quote(name, safe="/")):
            r = client.get(f"/ui/{encoded}")
            assert SECRET not in r.content and b"root:" not in r.content, name
            assert r.status_code != 500
