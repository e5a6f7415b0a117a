"""A1111 fields beyond the basics, over the fake engine: several ``init_images`` (A1111's batch
rule), the four ``inpainting_fill`` modes, ``image_cfg_scale``, ``hr_checkpoint_name`` and the
step cache (top-level ``cache``, ``sdcpp_cache`` in ``override_settings`` and ``/options``)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from a1111_world import API, SMALL, app_client, models_dir, png_b64
from fake_engine import FakeEngine
from PIL import Image
from starlette.testclient import TestClient
from test_detect import CASES
from test_plan import put

from sdcpp.server.dialects.a1111 import fill, inputs
from sdcpp.server.dialects.a1111.schemas import Img2ImgRequest


class InitSeeingEngine(FakeEngine):
    """The fake engine, also noting each job's init image colour at (32, 32) while it exists
    (a job's inputs are removed when it ends)."""

    def __init__(self) -> None:
        super().__init__()
        self.init_colours: list[tuple[int, ...]] = []

    def run(self, job_id: str, kind: str, params: dict[str, Any], *args: Any) -> dict[str, Any]:
        if path := params.get("init_image_path"):
            with Image.open(path) as image:
                self.init_colours.append(tuple(image.convert("RGB").getpixel((32, 32))))
        return super().run(job_id, kind, params, *args)


@pytest.fixture
def engine() -> InitSeeingEngine:
    return InitSeeingEngine()


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    """a1111_world's models plus an SD 1.x header (``sd15``: the UNet cache family)."""
    put(models_dir(tmp_path) / "models", "checkpoints/sd15.safetensors", CASES["sd1"]())
    yield from app_client(tmp_path, engine)


def params(engine: FakeEngine, index: int = -1) -> dict[str, Any]:
    return engine.runs[index][2]


def _png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# -- several init images ---------------------------------------------------------------------
def test_several_init_images_make_the_batch_one_job_each(
    client: TestClient, engine: InitSeeingEngine
) -> None:
    red, blue = png_b64((64, 64), (200, 0, 0)), png_b64((64, 64), (0, 0, 200))
    body = {"prompt": "x", "steps": 2, "init_images": [red, blue], "batch_size": 4,
            "n_iter": 2, "seed": 100}  # fmt: skip
    r = client.post(f"{API}/img2img", json=body)
    assert r.status_code == 200, r.text
    assert len(engine.runs) == 4 and len(r.json()["images"]) == 4
    runs = [run[2] for run in engine.runs]
    # batch_size becomes the image count (2); image j of batch i: seed + i * 2 + j
    assert [p["seed"] for p in runs] == [100, 101, 102, 103]
    assert all(p["batch_count"] == 1 for p in runs)
    assert engine.init_colours == [(200, 0, 0), (0, 0, 200), (200, 0, 0), (0, 0, 200)]
    assert len(json.loads(r.json()["info"])["all_seeds"]) == 4  # the fake's seeds: one each
    assert r.json()["parameters"]["batch_size"] == 2


def test_one_init_image_serves_the_whole_batch(client: TestClient, engine: FakeEngine) -> None:
    body = {"prompt": "x", "steps": 2, "init_images": [png_b64()], "batch_size": 3, "seed": 5}
    assert client.post(f"{API}/img2img", json=body).status_code == 200
    assert len(engine.runs) == 1 and params(engine)["batch_count"] == 3


def test_more_init_images_than_the_batch_are_refused(
    client: TestClient, engine: FakeEngine
) -> None:
    body = {"prompt": "x", "steps": 2, "init_images": [png_b64(), png_b64(), png_b64()],
            "batch_size": 2}  # fmt: skip
    r = client.post(f"{API}/img2img", json=body)
    assert r.status_code == 400, r.text
    assert "bad number of images passed: 3; expecting 2 or less" in r.json()["detail"]
    assert not engine.runs


def test_several_images_share_the_mask_and_paste_back_each(client: TestClient) -> None:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 56, 56))
    body = {"prompt": "x", "steps": 2, "batch_size": 2, "mask": _png(mask), "mask_blur": 0,
            "init_images": [png_b64((64, 64), (200, 0, 0)), png_b64((64, 64), (0, 200, 0))],
            "inpaint_full_res": True}  # fmt: skip
    r = client.post(f"{API}/img2img", json=body)
    assert r.status_code == 200, r.text
    first, second = (Image.open(io.BytesIO(base64.b64decode(b))) for b in r.json()["images"])
    assert first.convert("RGB").getpixel((5, 5)) == (200, 0, 0)  # each into its own original
    assert second.convert("RGB").getpixel((5, 5)) == (0, 200, 0)


# -- inpainting_fill -------------------------------------------------------------------------
def _square_in_a_field() -> tuple[str, str]:
    """A blue field with a white square in the middle, and a mask of just that square."""
    image = Image.new("RGB", (64, 64), (20, 40, 220))
    image.paste((255, 255, 255), (24, 24, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (24, 24, 40, 40))
    return _png(image), _png(mask)


def _filled(mode: int, seed: int = 1) -> np.ndarray:
    image, mask = _square_in_a_field()
    req = Img2ImgRequest(init_images=[image], mask=mask, mask_blur=0, inpainting_fill=mode,
                         inpaint_full_res=False)  # fmt: skip
    init = inputs.prepare(req, 4096 * 4096, seed).inits[0]
    return np.asarray(Image.open(io.BytesIO(init)).convert("RGB"), np.int16)


def test_inpainting_fill_modes() -> None:
    original = _filled(fill.ORIGINAL)
    assert tuple(original[32, 32]) == (255, 255, 255)  # 1: the image as it is
    filled = _filled(fill.FILL)
    # 0: the square takes the colours around it (the field's blue), not the white it was
    assert np.abs(filled[26:38, 26:38] - (20, 40, 220)).max() <= 2
    noise = _filled(fill.LATENT_NOISE)
    square = noise[24:40, 24:40].reshape(-1, 3)
    assert square.std() > 50 and len({tuple(p) for p in square}) > 200  # 2: random colours
    assert np.array_equal(noise, _filled(fill.LATENT_NOISE))  # seeded: reproducible
    assert not np.array_equal(noise, _filled(fill.LATENT_NOISE, seed=2))
    nothing = _filled(fill.LATENT_NOTHING)
    assert np.abs(nothing[24:40, 24:40] - 127.5).max() <= 1  # 3: flat mid-grey
    for out in (filled, noise, nothing):  # outside the mask nothing changes
        assert np.array_equal(out[:20], original[:20]) and np.array_equal(out[44:], original[44:])


def test_fill_with_nothing_kept_is_grey_and_a_bad_mode_is_refused() -> None:
    image, full = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("L", (8, 8), 255)
    out = np.asarray(fill.apply(image, full, fill.FILL, 0))
    assert np.abs(out.astype(np.int16) - 127.5).max() <= 1
    with pytest.raises(ValueError, match="inpainting_fill"):
        fill.apply(image, full, 7, 0)


def test_inpainting_fill_reaches_the_job(client: TestClient, engine: InitSeeingEngine) -> None:
    image, mask = _square_in_a_field()
    body = {"prompt": "x", "steps": 2, "init_images": [image], "mask": mask, "mask_blur": 0,
            "inpainting_fill": 3, "inpaint_full_res": False}  # fmt: skip
    assert client.post(f"{API}/img2img", json=body).status_code == 200
    assert abs(engine.init_colours[-1][0] - 127.5) <= 1  # the grey, inside the mask
    r = client.post(f"{API}/img2img", json={**body, "inpainting_fill": 4})
    assert r.status_code == 422  # A1111's range 0-3


# -- image_cfg_scale, hr_checkpoint_name -----------------------------------------------------
def test_image_cfg_scale_reaches_the_engine(client: TestClient, engine: FakeEngine) -> None:
    body = {"prompt": "x", "steps": 2, "init_images": [png_b64()], "image_cfg_scale": 1.5}
    assert client.post(f"{API}/img2img", json=body).status_code == 200
    assert params(engine)["image_cfg_scale"] == 1.5
    client.post(f"{API}/img2img", json={**body, "image_cfg_scale": None})
    assert "image_cfg_scale" not in params(engine)  # left out: the engine's (= cfg_scale)


def test_hr_checkpoint_name_must_be_the_requests_own(
    client: TestClient, engine: FakeEngine
) -> None:
    hr = {"prompt": "x", **SMALL, "enable_hr": True, "hr_upscaler": "Latent"}
    own = {"sd_model_checkpoint": "tiny"}
    for name in ("tiny", "Use same checkpoint", ""):
        body = {**hr, "hr_checkpoint_name": name, "override_settings": own}
        r = client.post(f"{API}/txt2img", json=body)
        assert r.status_code == 200, (name, r.text)
        assert Path(params(engine)["model"]).stem == "tiny" and "hires" in params(engine)
    runs = len(engine.runs)
    body = {**hr, "hr_checkpoint_name": "other", "override_settings": own}
    r = client.post(f"{API}/txt2img", json=body)
    assert r.status_code == 400 and "cannot switch checkpoints" in r.json()["detail"]
    r = client.post(f"{API}/txt2img", json={**hr, "hr_checkpoint_name": "nope"})
    assert r.status_code == 404
    assert "Could not find checkpoint with name nope" in r.json()["detail"]
    assert len(engine.runs) == runs  # refused before anything was queued


# -- the step cache --------------------------------------------------------------------------
def test_cache_as_a_top_level_field(client: TestClient, engine: FakeEngine) -> None:
    sd15 = {"override_settings": {"sd_model_checkpoint": "sd15"}}
    body = {"prompt": "x", **SMALL, **sd15}
    assert client.post(f"{API}/txt2img", json={**body, "cache": "balanced"}).status_code == 200
    assert params(engine)["cache"]["mode"] == "ucache"  # the UNet family's preset
    expert = {"mode": "ucache", "settings": {"reuse_threshold": 0.3}}
    assert client.post(f"{API}/txt2img", json={**body, "cache": expert}).status_code == 200
    assert params(engine)["cache"]["settings"] == {"reuse_threshold": 0.3}
    r = client.post(f"{API}/txt2img", json={**body, "cache": "cache-dit"})
    assert r.status_code == 400 and "unet" in r.text  # a DiT-only mode on a UNet model
    client.post(f"{API}/txt2img", json=body)
    assert "cache" not in params(engine)  # none asked: the engine's default (off)


def test_cache_through_override_settings_and_options(
    client: TestClient, engine: FakeEngine
) -> None:
    body = {"prompt": "x", **SMALL}
    over = {"sd_model_checkpoint": "sd15", "sdcpp_cache": "fast"}
    r = client.post(f"{API}/txt2img", json={**body, "override_settings": over})
    assert r.status_code == 200, r.text
    fast = params(engine)["cache"]
    assert fast["mode"] == "ucache"
    # that request only
    client.post(
        f"{API}/txt2img", json={**body, "override_settings": {"sd_model_checkpoint": "sd15"}}
    )
    assert "cache" not in params(engine)
    # /options: the caller's default; a request's own field wins over it
    choice = {"sd_model_checkpoint": "sd15", "sdcpp_cache": "balanced"}
    assert client.post(f"{API}/options", json=choice).status_code == 200
    assert client.get(f"{API}/options").json()["sdcpp_cache"] == "balanced"
    client.post(f"{API}/txt2img", json=body)
    assert params(engine)["cache"]["settings"] != fast["settings"]  # balanced, not fast
    client.post(f"{API}/txt2img", json={**body, "cache": "off"})
    assert "cache" not in params(engine)
    r = client.post(f"{API}/options", json={"sdcpp_cache": 5})
    assert r.status_code == 400 and "sdcpp_cache" in r.json()["detail"]
