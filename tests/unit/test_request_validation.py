"""Bad generation options are refused in Python, before native code sees them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdcpp import GenerationRequest, InvalidArgument
from sdcpp._generation import build_img_params


def build(**kw: object) -> object:
    return build_img_params(GenerationRequest(prompt="x", **kw), seed=1)  # type: ignore[arg-type]


def test_valid_request_maps_to_native_fields() -> None:
    p = build(width=64, height=32, steps=3, cfg_scale=5.0, sample_method="euler", batch_count=2)
    assert (p.width, p.height, p.batch_count, p.seed) == (64, 32, 2, 1)
    assert p.sample_params.sample_steps == 3
    assert p.sample_params.txt_cfg == 5.0
    assert p.sample_params.sample_method.library_name == "euler"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"width": 65, "height": 64}, "multiple of 8"),
        ({"width": 0}, "between"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "integer"),
        ({"batch_count": 0}, "batch_count"),
        ({"strength": 1.5}, "strength"),
        ({"cfg_scale": float("nan")}, "finite"),
        ({"sample_method": "nope"}, "sample_method"),
        ({"scheduler": "nope"}, "scheduler"),
    ],
)
def test_bad_values_raise_invalid_argument(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build(**kw)


def test_init_image_sets_size_and_mask_must_match() -> None:
    init = Image.new("RGB", (64, 48), "red")
    p = build(init_image=init)
    assert (p.width, p.height) == (64, 48)
    with pytest.raises(InvalidArgument, match="mask_image is 32x32"):
        build(init_image=init, mask_image=Image.new("L", (32, 32)))
    with pytest.raises(InvalidArgument, match="needs an init_image"):
        build(mask_image=Image.new("L", (64, 48)))


def test_wrong_array_dtype_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="uint8"):
        build(init_image=np.zeros((64, 64, 3), np.float32))


def test_missing_lora_file_is_refused(tmp_path) -> None:
    from sdcpp import Lora, ModelLoadError

    with pytest.raises(ModelLoadError, match="not found"):
        build(loras=[Lora(path=str(tmp_path / "missing.safetensors"))])
