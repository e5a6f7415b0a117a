"""The real ``openai`` SDK against the app (in process: Starlette's TestClient is the SDK's
httpx client), over the recording fake engine: DALL-E 2's edit without a mask (the image's
transparent area is the mask) and the step cache sent with ``extra_body``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai_fakes import Recorder, last_inputs, last_params, make_app
from PIL import Image
from starlette.testclient import TestClient
from test_detect import CASES
from test_plan import put


@pytest.fixture
def app(tmp_path: Path, engine: Recorder) -> Iterator[TestClient]:
    with make_app(tmp_path, engine) as client:
        # an SD 1.x header beside the fake's tiny model: the UNet step-cache family
        put(tmp_path / "data" / "models", "checkpoints/sd15.safetensors", CASES["sd1"]())
        client.post("/api/models/refresh")
        yield client


@pytest.fixture
def sdk(app: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=str(app.base_url) + "/v1", api_key="any", max_retries=0, http_client=app
    )


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _holed(size: tuple[int, int] = (64, 64)) -> bytes:
    """An opaque red image whose right half is transparent (alpha 0)."""
    image = Image.new("RGBA", size, (200, 10, 10, 255))
    image.paste((0, 0, 0, 0), (size[0] // 2, 0, size[0], size[1]))
    return _png(image)


def test_edit_without_mask_uses_the_images_transparency(
    sdk: openai.OpenAI, engine: Recorder
) -> None:
    result = sdk.images.edit(
        image=("holed.png", _holed(), "image/png"),
        prompt="a sunny sky",
        size="64x64",
        extra_body={"steps": 2},
    )
    assert result.data and result.data[0].b64_json
    _, kind, _ = engine.runs[-1]
    assert kind == "inpainting"  # the transparent half is the area to edit
    mask = last_inputs(engine)["mask_image_path"]
    assert mask.getpixel((60, 5)) == 255 and mask.getpixel((5, 5)) == 0  # white = repaint
    assert last_inputs(engine)["init_image_path"].getpixel((5, 5)) == (200, 10, 10)


def test_edit_of_an_opaque_image_without_mask_is_plain_img2img(
    sdk: openai.OpenAI, engine: Recorder
) -> None:
    opaque = _png(Image.new("RGBA", (64, 64), (200, 10, 10, 255)))  # alpha, all of it 255
    sdk.images.edit(image=("o.png", opaque, "image/png"), prompt="x", extra_body={"steps": 2})
    _, kind, params = engine.runs[-1]
    assert kind == "img2img" and "mask_image_path" not in params


def test_an_explicit_mask_wins_over_the_images_transparency(
    sdk: openai.OpenAI, engine: Recorder
) -> None:
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 16, 16))  # only the top-left corner
    sdk.images.edit(
        image=("holed.png", _holed(), "image/png"),
        mask=("m.png", _png(mask), "image/png"),
        prompt="x",
        extra_body={"steps": 2},
    )
    stored = last_inputs(engine)["mask_image_path"]
    assert stored.getpixel((5, 5)) == 255 and stored.getpixel((60, 5)) == 0


def test_a_variation_of_a_transparent_image_changes_all_of_it(
    app: TestClient, engine: Recorder
) -> None:
    # (the SDK marks images.create_variation deprecated: the form it would send, over httpx)
    files = [("image", ("holed.png", _holed(), "image/png"))]
    r = app.post("/v1/images/variations", files=files, data={"size": "64x64", "steps": "2"})
    assert r.status_code == 200, r.text
    _, kind, params = engine.runs[-1]
    assert kind == "img2img" and "mask_image_path" not in params


def test_cache_through_extra_body(sdk: openai.OpenAI, engine: Recorder) -> None:
    base = {"steps": 2}
    sdk.images.generate(
        prompt="x", model="sd15", size="64x64", extra_body={**base, "cache": "fast"}
    )
    assert last_params(engine)["cache"]["mode"] == "ucache"  # the UNet family's preset
    expert = {"mode": "ucache", "settings": {"reuse_threshold": 0.3}}
    sdk.images.generate(prompt="x", model="sd15", extra_body={**base, "cache": expert})
    assert last_params(engine)["cache"]["settings"] == {"reuse_threshold": 0.3}
    # an edit's multipart form: a preset as a field, the object as a JSON string
    image = ("o.png", _png(Image.new("RGB", (64, 64))), "image/png")
    sdk.images.edit(image=image, prompt="x", model="sd15", extra_body={**base, "cache": "balanced"})
    assert last_params(engine)["cache"]["mode"] == "ucache"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.generate(prompt="x", model="sd15", extra_body={"cache": "cache-dit"})
    assert "unet" in str(refused.value)  # a DiT-only mode on a UNet model, refused naming why
    sdk.images.generate(prompt="x", model="sd15", extra_body=base)
    assert "cache" not in last_params(engine)  # none asked: the engine's default (off)


def test_cache_object_in_an_edit_form(app: TestClient, engine: Recorder) -> None:
    files = [("image", ("o.png", _png(Image.new("RGB", (64, 64))), "image/png"))]
    data = {"prompt": "x", "model": "sd15", "steps": "2",
            "cache": '{"mode": "ucache", "settings": {"reuse_threshold": 0.4}}'}  # fmt: skip
    r = app.post("/v1/images/edits", files=files, data=data)
    assert r.status_code == 200, r.text
    assert last_params(engine)["cache"]["settings"] == {"reuse_threshold": 0.4}
    r = app.post("/v1/images/edits", files=files, data={**data, "cache": "{nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cache"
