"""The OpenAI Images dialect driven by the real ``openai`` SDK against a real ``sdcpp serve``
(real worker, the synthetic tiny model, 64x64, 1-2 steps). One server for the module."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from PIL import Image

from .test_serve import Server

EXTRAS = {"steps": 2, "seed": 5, "cfg_scale": 1.0, "negative_prompt": "blur"}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_path: Path
) -> Iterator[tuple[Server, openai.OpenAI]]:
    data = tmp_path_factory.mktemp("openai") / "data"
    (data / "models" / "checkpoints").mkdir(parents=True)
    os.link(tiny_path, data / "models" / "checkpoints" / "tiny.safetensors")
    srv = Server(data).start()
    try:
        yield srv, openai.OpenAI(base_url=f"{srv.url}/v1", api_key="any", max_retries=0)
    finally:
        srv.stop()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_generate_n2_b64_then_url(client: tuple[Server, openai.OpenAI]) -> None:
    srv, sdk = client
    result = sdk.images.generate(prompt="a red fox", n=2, size="64x64", extra_body=EXTRAS)
    assert len(result.data or []) == 2
    png = base64.b64decode((result.data or [])[0].b64_json or "")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.size == "64x64" and result.output_format == "png"
    # an ordinary queued job: listed in the queue
    jobs = srv.get("/api/queue/status").json()
    assert "txt2img" in str(jobs)

    result = sdk.images.generate(
        prompt="a red fox",
        size="64x64",
        response_format="url",
        output_format="webp",
        extra_body=EXTRAS,
    )
    url = (result.data or [])[0].url or ""
    assert url.startswith(srv.url)
    body = httpx.get(url, timeout=30).content
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"


def test_edit_with_mask_and_with_two_images(client: tuple[Server, openai.OpenAI]) -> None:
    srv, sdk = client
    source = _png(Image.new("RGB", (64, 64), (30, 120, 200)))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # transparent half: the part to edit
    edited = sdk.images.edit(
        image=("in.png", source, "image/png"),
        mask=("mask.png", _png(mask), "image/png"),
        prompt="a hat",
        size="64x64",
        extra_body={"steps": 1, "seed": 2},
    )
    out = Image.open(io.BytesIO(base64.b64decode((edited.data or [])[0].b64_json or "")))
    assert out.size == (64, 64)
    assert "inpainting" in str(srv.get("/api/queue/status").json())  # the mask reached it
    two = sdk.images.edit(
        image=[("a.png", source, "image/png"), ("b.png", _png(Image.new("RGB", (64, 64))))],
        prompt="a cat",
        n=1,
        extra_body={"steps": 1},
    )
    assert two.size == "64x64" and len(two.data or []) == 1

    with pytest.warns(DeprecationWarning):  # the SDK marks OpenAI's endpoint retired; ours works
        varied = sdk.images.create_variation(
            image=("v.png", source, "image/png"), n=1, size="64x64", extra_body={"steps": 1}
        )
    assert varied.size == "64x64" and (varied.data or [])[0].b64_json


def test_streaming_with_partial_images(client: tuple[Server, openai.OpenAI]) -> None:
    _, sdk = client
    stream = sdk.images.generate(
        prompt="a lighthouse",
        size="64x64",
        stream=True,
        partial_images=2,
        extra_body={"steps": 2, "seed": 1},
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "image_generation.completed", kinds
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert [p.partial_image_index for p in partials] == list(range(len(partials)))
    assert 1 <= len(partials) <= 2, kinds  # the engine's step previews
    frame = Image.open(io.BytesIO(base64.b64decode(partials[0].b64_json)))
    assert frame.size == (64, 64)
    final = events[-1]
    assert final.type == "image_generation.completed"
    assert base64.b64decode(final.b64_json)[:4] == b"\x89PNG" and final.usage.total_tokens == 0


def test_errors_and_models(client: tuple[Server, openai.OpenAI]) -> None:
    srv, sdk = client
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(prompt="x", size="64x64", extra_body={"bogus": 1})
    assert err.value.code == "unknown_parameter" and err.value.param == "bogus"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.generate(prompt="x", size="huge")
    assert err.value.param == "size"
    with pytest.raises(openai.NotFoundError):
        sdk.images.generate(prompt="x", model="no-such-model", size="64x64")
    with pytest.raises(openai.BadRequestError) as err:
        sdk.images.edit(image=("a.txt", b"not an image", "text/plain"), prompt="x")
    assert err.value.param == "image"
    ids = [m.id for m in sdk.models.list()]
    assert ids and sdk.models.retrieve(ids[0]).id == ids[0]
    options = httpx.options(f"{srv.url}/v1/images/generations", timeout=10)
    assert 200 <= options.status_code < 300


def test_open_webui_openai_engine_requests(client: tuple[Server, openai.OpenAI]) -> None:
    """The exact requests of Open WebUI's "openai" image engine, from
    backend/open_webui/routers/images.py of open-webui/open-webui at commit 02530d50 (after
    the 0.7 release): ``image_generations`` posts JSON {model, prompt, n, size,
    response_format: "b64_json", **IMAGES_OPENAI_API_PARAMS} with a Bearer key and reads
    data[].b64_json (or fetches data[].url with the same Authorization); the model is
    "dall-e-2" when none is configured. ``image_edits`` posts multipart: text fields model,
    prompt, n, size, background, response_format as strings, one file as ``image`` or several
    as ``image[]`` named <uuid>.png."""
    srv, _ = client
    headers = {"Authorization": "Bearer sk-open-webui", "Content-Type": "application/json"}
    data = {
        "model": "dall-e-2",  # Open WebUI's default when IMAGE_GENERATION_MODEL is empty
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": "64x64",
        "response_format": "b64_json",
        **{"steps": 1, "seed": 4},  # IMAGES_OPENAI_API_PARAMS, the admin's extra JSON
    }
    r = httpx.post(f"{srv.url}/v1/images/generations", json=data, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    image = r.json()["data"][0]
    assert base64.b64decode(image["b64_json"])[:4] == b"\x89PNG" and "url" not in image
    # a model matching IMAGE_URL_RESPONSE_MODELS_REGEX_PATTERN: no response_format sent
    data.pop("response_format")
    r = httpx.post(f"{srv.url}/v1/images/generations", json=data, headers=headers, timeout=120)
    assert r.status_code == 200 and r.json()["data"][0]["b64_json"]
    # a url answer is fetched with the same Authorization and must be an image/* body
    r = httpx.post(
        f"{srv.url}/v1/images/generations",
        json={**data, "response_format": "url"},
        headers=headers,
        timeout=120,
    )
    fetched = httpx.get(
        r.json()["data"][0]["url"], headers={"Authorization": headers["Authorization"]}
    )
    assert fetched.headers["content-type"].split("/")[0] == "image"

    source = _png(Image.new("RGB", (64, 64), (10, 90, 30)))
    fields = {"model": "dall-e-2", "prompt": "snow", "n": "1", "size": "64x64",
              "background": "auto", "response_format": "b64_json", "steps": "1"}  # fmt: skip
    auth = {"Authorization": "Bearer sk-open-webui"}
    for files in (
        [("image", ("5d2c.png", source, "image/png"))],
        [
            ("image[]", ("a1.png", source, "image/png")),
            ("image[]", ("b2.png", source, "image/png")),
        ],
    ):
        r = httpx.post(
            f"{srv.url}/v1/images/edits", data=fields, files=files, headers=auth, timeout=120
        )
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["data"][0]["b64_json"])[:4] == b"\x89PNG"


def test_sillytavern_sdcpp_source_requests(client: tuple[Server, openai.OpenAI]) -> None:
    """SillyTavern's ``sdcpp`` image source (src/endpoints/stable-diffusion.js, its ``sdcpp``
    router, as shipped through the 1.13-1.18 releases): ``/ping`` sends ``OPTIONS
    <url>/v1/images/generations`` with no credentials and needs a 2xx; ``/models`` sends ``GET
    <url>/v1/models`` and the page lists ``data.data.map(m => ({value: m.id, text: m.name ||
    m.id}))``. Generation itself goes to ``POST /sdapi/v1/txt2img`` (the A1111 dialect's
    tests). Its ``openai`` source calls api.openai.com only: nothing to point at us."""
    srv, _ = client
    ping = httpx.request("OPTIONS", f"{srv.url}/v1/images/generations", timeout=10)
    assert ping.is_success
    listed = httpx.get(f"{srv.url}/v1/models", timeout=10).json()
    choices = [{"value": m["id"], "text": m.get("name") or m["id"]} for m in listed["data"]]
    assert choices and all(c["value"] and c["text"] for c in choices)
