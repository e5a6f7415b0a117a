"""Adding an image generation parameter is one spec field plus one limits row.

The worker's params (``job_record.image_params``) and the native request fields
(``schemas.native``) are derived from ``ImageSpec``'s fields, so these tests fail when a field
would be stored but never reach the engine or the native API.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError, create_model

from sdcpp import _safetensors
from sdcpp.jobspec import ImageSpec, LoraRef, SpecError, limits
from sdcpp.jobspec.image import SPECIAL_FIELDS, generation_options
from sdcpp.options import CacheOptions, HiresFix, SkipLayerGuidance, VaeTiling
from sdcpp.server.job_record import image_params
from sdcpp.server.schemas.native import (
    GenerateBase,
    Img2ImgRequest,
    Text2ImgRequest,
    spec_request_fields,
)
from sdcpp.server.worker.jobs import parse_image_job

ENGINE = {"model": "/models/tiny.safetensors"}
# Spec fields the worker never sees as such, and why: the resolved spec moves the model and
# companions into the record's engine part; ``extra`` is dialect info kept with the job.
NOT_IN_PARAMS = {"model", "vae", "clip_l", "clip_g", "t5xxl", "llm", "taesd", "extra"}


def _png(path: Path) -> str:
    Image.new("RGB", (128, 128), "gray").save(path)
    return str(path)


def _sample(name: str, default: Any, tmp: Path) -> Any:
    """A valid value for field ``name`` that differs from its default."""
    if name == "loras":
        return (LoraRef(name=_sample("lora", None, tmp), weight=0.5),)
    structured = {
        "cache": CacheOptions(mode="ucache"),
        "hires": HiresFix(scale=2.0),
        "vae_tiling": VaeTiling(enabled=True),
        "skip_layer_guidance": SkipLayerGuidance(scale=2.0),
        "output_format": "webp",
        "mask_image": _png(tmp / "mask.png"),
        "init_image": _png(tmp / "init.png"),
        "control_image": _png(tmp / "control.png"),
        "ref_images": (_png(tmp / "ref.png"),),
        "photo_maker_images": (_png(tmp / "pm.png"),),
        "sampler": "euler",
        "scheduler": "karras",
        "extra": {"dialect": "x"},
    }
    if name in structured:
        return structured[name]
    if name in limits.LIMITS:
        row = limits.LIMITS[name]
        value = row.multiple_of * 2 if row.multiple_of else (row.low + row.high) / 2
        return int(value) if row.integer else value
    if isinstance(default, bool):
        return not default
    if name.endswith("_dir"):  # files and dirs: already resolved inside the models dir
        (tmp / name).mkdir(exist_ok=True)
        return str(tmp / name)
    path = tmp / f"{name}.safetensors"
    _safetensors.save(path, {"x": np.zeros(2, np.float16)})
    return str(path)


def _full_spec(tmp: Path) -> ImageSpec:
    values = {
        f.name: _sample(f.name, f.default, tmp)
        for f in dataclasses.fields(ImageSpec)
        if f.name != "prompt"
    }
    values["seed"] = 42
    return ImageSpec(prompt="a cat", **values)


def test_every_image_spec_field_reaches_the_worker_params(tmp_path: Path) -> None:
    baseline = image_params(ImageSpec(prompt="a cat"), ENGINE)
    full = _full_spec(tmp_path)
    missing = []
    for f in dataclasses.fields(ImageSpec):
        if f.name in NOT_IN_PARAMS or f.name == "prompt":
            continue
        one = dataclasses.replace(ImageSpec(prompt="a cat"), **{f.name: getattr(full, f.name)})
        if image_params(one, ENGINE) == baseline:
            missing.append(f.name)
    assert missing == [], f"set but never sent to the worker: {missing}"


def test_the_worker_accepts_every_param_and_each_option_lands_in_the_request(
    tmp_path: Path,
) -> None:
    spec = _full_spec(tmp_path)
    job = parse_image_job(image_params(spec, ENGINE), {})
    for name, engine_name in generation_options().items():
        # a generation option, or a file the context loads (ControlNet, PhotoMaker, dirs)
        sent = job.options[engine_name] if engine_name in job.options else job.context[name]
        assert sent == getattr(spec, name), name
    assert job.options["seed"] == 42
    assert job.context["n_threads"] == spec.n_threads


def test_the_plain_options_are_every_field_but_the_special_ones() -> None:
    options = set(generation_options())
    names = {f.name for f in dataclasses.fields(ImageSpec)}
    assert options == names - SPECIAL_FIELDS
    assert generation_options()["sampler"] == "sample_method"  # the field's ENGINE_NAME


def test_every_numeric_option_is_a_native_field_bounded_by_its_limits_row() -> None:
    derived = spec_request_fields()
    assert {"width", "steps", "image_cfg_scale", "photo_maker_style_strength"} <= set(derived)
    for name in derived:
        assert name in Text2ImgRequest.model_fields, name
        row = limits.LIMITS.get(name)
        if row is not None:
            with pytest.raises(ValidationError, match=name):
                Text2ImgRequest.model_validate({"prompt": "p", name: row.high + 1})
    # options the image-input requests declare stay theirs: text2img refuses them
    with pytest.raises(ValidationError, match="strength"):
        Text2ImgRequest.model_validate({"prompt": "p", "strength": 0.5})
    assert Img2ImgRequest.model_validate({"prompt": "p", "init_image": "x"}).strength == 0.75


def test_a_native_body_sets_each_derived_option_on_the_spec(tmp_path: Path) -> None:
    full = _full_spec(tmp_path)
    for name in spec_request_fields():
        value = getattr(full, name)
        spec = Text2ImgRequest.model_validate({"prompt": "p", name: value}).to_spec()
        assert getattr(spec, name) == value, name


# A parameter the library has and the spec does not yet: what a contributor would add.
@dataclass(frozen=True, slots=True, kw_only=True)
class _WithShift(ImageSpec):
    shifted_timestep: int | None = None


def test_adding_a_parameter_takes_the_field_and_its_limits_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # without the row the native schema refuses to build, naming what is missing
    with pytest.raises(LookupError, match=r"shifted_timestep.*LIMITS"):
        spec_request_fields(_WithShift)
    monkeypatch.setitem(limits.LIMITS, "shifted_timestep", limits.Limit(0, 1000, integer=True))
    spec = _WithShift(prompt="a cat", shifted_timestep=500)
    with pytest.raises(SpecError, match="shifted_timestep"):
        dataclasses.replace(spec, shifted_timestep=5000).validate()  # the row bounds it
    spec.validate()
    params = image_params(spec, ENGINE)
    assert params["shifted_timestep"] == 500
    assert parse_image_job(params, {}).options["shifted_timestep"] == 500  # the library's field
    request = create_model(
        "WithShiftRequest", __base__=GenerateBase, **spec_request_fields(_WithShift)
    )
    assert request.model_validate({"prompt": "p", "shifted_timestep": 7}).shifted_timestep == 7
    with pytest.raises(ValidationError, match="shifted_timestep"):
        request.model_validate({"prompt": "p", "shifted_timestep": 1001})
