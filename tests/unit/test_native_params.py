"""The owning parameter wrappers start from the engine's *_init() defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdcpp import _native


def test_ctx_params_defaults_come_from_the_engine() -> None:
    p = _native.CtxParams()
    assert p.n_threads == _native.num_physical_cores()
    assert p.free_params_immediately is True  # the engine's default; StableDiffusion overrides it
    assert p.vae_decode_only is True
    assert p.model_path == ""
    assert p.wtype == _native.SdType.COUNT
    assert f"n_threads: {p.n_threads}" in p.to_str()


def test_img_gen_params_defaults_and_nested_mutation() -> None:
    g = _native.ImgGenParams()
    assert (g.width, g.height, g.seed, g.batch_count) == (512, 512, -1, 1)
    assert g.sample_params.sample_steps == 20
    assert math.isinf(g.sample_params.eta)  # "engine picks per sampler"
    assert g.sample_params.sample_method == _native.SampleMethod.COUNT
    g.sample_params.sample_steps = 3  # nested objects are references, not copies
    assert g.sample_params.sample_steps == 3
    assert "sample_steps: 3" in g.to_str()


def test_image_fields_keep_arrays_and_validate_dtype() -> None:
    g = _native.ImgGenParams()
    img = np.zeros((16, 8, 3), np.uint8)
    g.init_image = img
    assert g.init_image.shape == (16, 8, 3)
    g.init_image = None
    assert g.init_image is None
    with pytest.raises(TypeError, match="uint8"):
        g.init_image = np.zeros((16, 8, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        g.mask_image = np.zeros((2, 2, 2, 2), np.uint8)
    g.ref_images = [img, img]
    assert len(g.ref_images) == 2


def test_vid_params_defaults() -> None:
    v = _native.VidGenParams()
    assert v.video_frames == 6
    assert v.high_noise_sample_params.sample_steps == -1
