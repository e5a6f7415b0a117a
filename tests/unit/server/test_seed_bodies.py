"""Seed 002's own example bodies (its README, verbatim) are accepted: its spellings are
aliases of ours. Where an example names a file that does not exist here ("optional_vae_name",
"canny") the answer is about that file, which proves the field was read, not refused."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient
from test_detect import CASES
from test_images_api import LocalServer, Spy, loopback_fetcher, server  # noqa: F401
from test_plan import put

from sdcpp import _safetensors
from sdcpp.server import Settings, create_app


def _b64_png(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, size, 200).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _model(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _safetensors.save(path, {"x": np.zeros(2, np.float16)})  # the fake engine never loads


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "models"
    for name in ("checkpoints/sd-v1-5", "checkpoints/other", "vae/kl-f8", "controlnet/cn"):
        _model(root / f"{name}.safetensors")
    put(root, "checkpoints/sd15.safetensors", CASES["sd1"]())  # an SD 1.x header: UNet family
    return root


def make_client(models: Path, **settings: Any) -> TestClient:
    base = Settings(data_dir=models.parent, max_queue=20, shutdown_grace=0.5, **settings)
    return TestClient(create_app(base, engine=FakeEngine()))


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    with make_client(models) as c:
        yield c


def _job(client: TestClient, response: Any) -> Any:
    assert response.status_code in (200, 202), response.text
    return client.app.state.jobs.store.get(response.json()["job_id"])  # type: ignore[attr-defined]


# The seed's examples, as its README writes them (sizes kept: the fake engine never runs them).
TEXT2IMG = {
    "prompt": "a beautiful landscape",
    "negative_prompt": "blurry, low quality",
    "width": 1024,
    "height": 1024,
    "steps": 20,
    "cfg_scale": 7.5,
    "sampling_method": "euler",
    "scheduler": "karras",
    "seed": "random",
    "batch_count": 1,
    "vae_model": "optional_vae_name",
}


def test_text2img_example_reads_vae_model(client: TestClient) -> None:
    r = client.post("/api/generate/text2img", json=TEXT2IMG)
    assert r.status_code == 404 and "optional_vae_name" in r.text, r.text  # read, not refused
    job = _job(
        client, client.post("/api/generate/text2img", json={**TEXT2IMG, "vae_model": "kl-f8"})
    )
    assert Path(job.params["vae"]).name == "kl-f8.safetensors"
    assert job.params["width"] == 1024 and job.params["scheduler"] == "karras"


def test_img2img_example_takes_base64(client: TestClient) -> None:
    body = {
        "prompt": "transform into anime style",
        "init_image": _b64_png(),
        "strength": 0.75,
        "width": 1024,
        "height": 1024,
        "steps": 20,
        "cfg_scale": 7.5,
    }
    job = _job(client, client.post("/api/generate/img2img", json=body))
    assert job.kind == "img2img" and job.params["strength"] == 0.75
    assert Path(job.params["init_image_path"]).is_file()


def test_inpainting_example_reads_source_image(client: TestClient) -> None:
    body = {
        "prompt": "change hair color to blonde",
        "source_image": _b64_png(),
        "mask_image": _b64_png(mode="L"),
        "strength": 0.75,
        "width": 512,
        "height": 512,
    }
    job = _job(client, client.post("/api/generate/inpainting", json=body))
    assert job.kind == "inpainting"
    assert Path(job.params["init_image_path"]).is_file()
    assert Path(job.params["mask_image_path"]).is_file()


def test_controlnet_example_reads_control_net_model(client: TestClient) -> None:
    body = {
        "prompt": "a person standing",
        "control_image": _b64_png(),
        "control_net_model": "canny",
        "control_strength": 0.9,
        "width": 512,
        "height": 512,
    }
    r = client.post("/api/generate/controlnet", json=body)
    assert r.status_code == 404 and "canny" in r.text, r.text
    job = _job(
        client, client.post("/api/generate/controlnet", json={**body, "control_net_model": "cn"})
    )
    assert Path(job.params["control_net"]).name == "cn.safetensors"


def test_upscale_example_reads_esrgan_model_and_upscale_factor(client: TestClient) -> None:
    body = {"image": _b64_png(), "esrgan_model": "esrgan_model_name", "upscale_factor": 4}
    r = client.post("/api/generate/upscale", json=body)
    assert r.status_code == 404 and "esrgan_model_name" in r.text, r.text


def test_v1_generate_example_reads_model_and_batch_size(client: TestClient) -> None:
    from sdcpp.server.schemas.native import Text2ImgRequest

    body = {
        "prompt": "a beautiful landscape",
        "negative_prompt": "blurry, low quality",
        "model": "sd-v1-5",
        "width": 512,
        "height": 512,
        "steps": 20,
        "cfg_scale": 7.5,
        "seed": -1,
        "batch_size": 1,
    }
    req = Text2ImgRequest.model_validate(body)
    assert req.model_name == "sd-v1-5" and req.batch_count == 1
    job = _job(client, client.post("/api/generate/text2img", json={**body, "batch_size": 2}))
    assert job.params["model"].endswith("sd-v1-5.safetensors") and job.params["batch_count"] == 2


def test_models_batch_example_reads_operation_and_models(client: TestClient) -> None:
    body = {"operation": "load", "models": ["model1", "model2", "model3"]}
    r = client.post("/api/models/batch", json=body)
    assert r.status_code != 422, r.text  # accepted as a body; each model answers for itself
    assert "model1" in r.text


@pytest.mark.parametrize("route", ["/api/models/hash", "/api/models/validate"])
def test_model_name_is_read_by_hash_and_validate(client: TestClient, route: str) -> None:
    r = client.post(route, json={"model_name": "sd-v1-5"})
    assert r.status_code == 200, r.text


def test_estimate_takes_a_generate_body(client: TestClient) -> None:
    r = client.post("/api/estimate", json=TEXT2IMG | {"vae_model": "kl-f8"})
    assert r.status_code == 200, r.text


def test_unknown_fields_are_still_named(client: TestClient) -> None:
    r = client.post("/api/generate/text2img", json={"prompt": "x", "vae_modle": "kl-f8"})
    assert r.status_code == 422 and "vae_modle" in r.text


# -- base64_encoded_image_or_url -------------------------------------------------------------
def test_an_image_url_is_refused_while_download_is_off(client: TestClient) -> None:
    body = {"prompt": "x", "init_image": "https://images.test/a.png"}
    r = client.post("/api/generate/img2img", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FEATURE_DISABLED"
    assert "init_image" in r.text
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []


def test_an_image_url_is_fetched_by_the_safe_downloader(
    models: Path,
    server: LocalServer,  # noqa: F811
) -> None:
    raw = base64.b64decode(_b64_png((64, 64)))
    server.routes["/photo.png"] = (200, {"Content-Type": "image/png"}, raw)
    spy = Spy({"images.test": ["127.0.0.1"]})
    with make_client(models, allow_image_download=True) as client:
        client.app.state.fetcher = loopback_fetcher(server, spy)  # type: ignore[attr-defined]
        url = f"http://images.test:{server.port}/photo.png"
        job = _job(
            client, client.post("/api/generate/img2img", json={"prompt": "x", "init_image": url})
        )
        assert Path(job.params["init_image_path"]).is_file()
        assert [path for path, _ in server.requests] == ["/photo.png"]
        # the same SSRF rules as /api/image/download: a private address is never contacted
        private = {"prompt": "x", "init_image": "http://10.0.0.9/a.png"}
        r = client.post("/api/generate/img2img", json=private)
        assert r.status_code == 400 and r.json()["error"]["code"] == "URL_NOT_ALLOWED", r.text
        assert spy.connected == [("127.0.0.1", server.port)]


# -- step caching as a request field ---------------------------------------------------------
def test_cache_preset_is_resolved_for_the_architecture(client: TestClient) -> None:
    body = {"prompt": "x", "model_name": "sd15", "cache": "balanced"}
    job = _job(client, client.post("/api/generate/text2img", json=body))
    assert job.params["cache"]["mode"] == "ucache"  # the UNet family's balanced preset
    r = client.post("/api/generate/text2img", json={**body, "cache": "cache-dit"})
    assert r.status_code == 400 and "unet" in r.text  # a DiT-only mode, refused naming why


def test_cache_mode_object_with_engine_settings(client: TestClient) -> None:
    cache = {"mode": "ucache", "settings": {"reuse_threshold": 0.3}}
    body = {"prompt": "x", "model_name": "sd15", "cache": cache}
    job = _job(client, client.post("/api/generate/text2img", json=body))
    assert job.params["cache"]["settings"] == {"reuse_threshold": 0.3}


@pytest.mark.parametrize(
    ("cache", "named"),
    [("warp-speed", "warp-speed"), ({"mode": "ucache", "settings": {"bogus": 1}}, "bogus")],
)
def test_bad_cache_settings_are_refused_before_queuing(
    client: TestClient, cache: Any, named: str
) -> None:
    body = {"prompt": "x", "model_name": "sd15", "cache": cache}
    r = client.post("/api/generate/text2img", json=body)
    assert r.status_code == 400 and named in r.text, r.text
    assert client.get("/api/queue/status").json()["queue"]["jobs"] == []


# -- /api/parameters and /api/validate read the one limits table -----------------------------
def test_parameters_come_from_the_limits_table(client: TestClient) -> None:
    from sdcpp.jobspec import LIMITS

    body = client.get("/api/parameters").json()
    assert set(body["parameters"]) == set(LIMITS)
    width = body["parameters"]["width"]
    assert (width["min"], width["max"], width["step"]) == (64, 4096, 64)
    assert body["parameters"]["steps"]["max"] == LIMITS["steps"].high
    assert "euler" in body["samplers"] and "karras" in body["schedulers"]
    assert "balanced" in body["cache"]["unet"]["presets"]


def test_validate_refuses_what_a_job_would_refuse(client: TestClient) -> None:
    assert client.post("/api/validate", json={"prompt": "x", "width": 512}).json()["valid"]
    r = client.post("/api/validate", json={"prompt": "x", "width": 72})
    assert r.status_code == 422 and "64 or 128" in r.text
