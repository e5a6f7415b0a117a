"""Generation through the real engine with synthetic models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

import sdcpp

SMALL = {"width": 64, "height": 64, "steps": 1}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


@pytest.mark.slow
def test_txt2img_full_size_sd1(sd1: sdcpp.StableDiffusion) -> None:
    (image,) = sd1.generate("a cat", seed=42, **SMALL)
    array = pixels(image)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert array.dtype == np.uint8
    assert array.std() > 1.0  # not a blank image
    assert image.info["seed"] == 42
    # the context stays usable: a second call on it (free_params_immediately is off)
    (again,) = sd1.generate("a cat", seed=42, **SMALL)
    assert pixels(again).tobytes() == array.tobytes()


def test_same_seed_same_bytes_other_seed_differs(tiny: sdcpp.StableDiffusion) -> None:
    a = pixels(tiny.generate("a house", seed=7, **SMALL)[0])
    b = pixels(tiny.generate("a house", seed=7, **SMALL)[0])
    c = pixels(tiny.generate("a house", seed=8, **SMALL)[0])
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_batch_of_two_has_consecutive_seeds(tiny: sdcpp.StableDiffusion) -> None:
    images = tiny.generate("a tree", seed=100, batch_count=2, **SMALL)
    assert [im.info["seed"] for im in images] == [100, 101]
    assert pixels(images[0]).tobytes() != pixels(images[1]).tobytes()
    # image i of a batch is the image a single run with seed+i gives
    (single,) = tiny.generate("a tree", seed=101, **SMALL)
    assert pixels(single).tobytes() == pixels(images[1]).tobytes()


def test_random_seed_is_reported(tiny: sdcpp.StableDiffusion) -> None:
    (image,) = tiny.generate("x", **SMALL)
    seed = image.info["seed"]
    assert isinstance(seed, int) and seed >= 0
    (again,) = tiny.generate("x", seed=seed, **SMALL)
    assert pixels(again).tobytes() == pixels(image).tobytes()


def test_img2img_uses_the_init_image(tiny: sdcpp.StableDiffusion) -> None:
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    (out,) = tiny.generate("a cat", seed=1, init_image=init, strength=0.5, steps=2)
    (txt,) = tiny.generate("a cat", seed=1, width=64, height=64, steps=2)
    assert out.size == (64, 64)
    assert pixels(out).tobytes() != pixels(txt).tobytes()
    (other_init,) = tiny.generate(
        "a cat", seed=1, init_image=Image.new("RGB", (64, 64), "blue"), strength=0.5, steps=2
    )
    assert pixels(other_init).tobytes() != pixels(out).tobytes()


def test_inpaint_changes_only_masked_half(tiny: sdcpp.StableDiffusion) -> None:
    rng = np.random.default_rng(0)
    init = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255  # white = repaint the left half
    (out,) = tiny.generate(
        "a cat", seed=3, init_image=init, mask_image=Image.fromarray(mask), strength=1.0, steps=2
    )
    (no_mask,) = tiny.generate("a cat", seed=3, init_image=init, strength=1.0, steps=2)
    diff = np.abs(pixels(out).astype(int) - pixels(no_mask).astype(int)).mean(axis=(0, 2))
    # the kept half (right) differs from an unmasked run much more than the repainted half does
    assert diff[40:].mean() > diff[:24].mean()


def test_progress_reports_each_sampling_step(tiny: sdcpp.StableDiffusion) -> None:
    seen: list[sdcpp.Progress] = []
    tiny.generate("a cat", seed=1, width=64, height=64, steps=3, progress=seen.append)
    sampling = [(p.step, p.total) for p in seen if p.phase == "sampling" and p.step > 0]
    assert sampling[-3:] == [(1, 3), (2, 3), (3, 3)]
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(seen))


def test_loading_progress_is_separate(tiny_path) -> None:
    seen: list[sdcpp.Progress] = []
    with sdcpp.StableDiffusion(tiny_path, n_threads=2, progress=seen.append):
        pass
    assert seen and {p.phase for p in seen} == {"loading"}
    assert seen[-1].step == seen[-1].total > 0


def test_preview_callback_gets_images(tiny: sdcpp.StableDiffusion) -> None:
    previews: list[tuple[int, list[Image.Image], bool]] = []
    tiny.generate(
        "a cat",
        seed=1,
        width=64,
        height=64,
        steps=2,
        preview=lambda step, frames, noisy: previews.append((step, frames, noisy)),
    )
    assert [step for step, _, _ in previews] == [1, 2]
    frames = previews[0][1]
    # "proj" previews project the latent to RGB: one pixel per latent cell (64 / 8)
    assert len(frames) == 1 and frames[0].size == (8, 8)


def test_log_callback_receives_engine_lines(tiny: sdcpp.StableDiffusion) -> None:
    lines: list[tuple[str, str]] = []
    sdcpp.set_log_callback(lambda level, text: lines.append((level, text)))
    try:
        tiny.generate("a cat", seed=1, **SMALL)
    finally:
        sdcpp.set_log_callback(None)
    assert any("generate_image" in text for _, text in lines)
    assert {level for level, _ in lines} <= {"debug", "info", "warning", "error"}


def test_exception_in_progress_callback_propagates(tiny: sdcpp.StableDiffusion) -> None:
    def boom(p: sdcpp.Progress) -> None:
        if p.step == 1:
            raise KeyError("from callback")

    with pytest.raises(KeyError, match="from callback"):
        tiny.generate("a cat", seed=1, width=64, height=64, steps=4, progress=boom)
    # the context is still usable afterwards
    assert tiny.generate("a cat", seed=1, **SMALL)[0].size == (64, 64)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"width": 60, "height": 64}, "multiple of 8"),
        ({"steps": 0}, "steps"),
        ({"init_image": np.zeros((64, 64, 3), np.float64)}, "uint8"),
        (
            {"init_image": Image.new("RGB", (64, 64)), "mask_image": Image.new("L", (32, 64))},
            "mask_image",
        ),
    ],
)
def test_bad_input_raises_and_context_survives(tiny: sdcpp.StableDiffusion, kw, error) -> None:
    with pytest.raises(sdcpp.InvalidArgument, match=error):
        tiny.generate("a cat", **{**SMALL, **kw})
    assert tiny.generate("a cat", seed=1, **SMALL)[0].size == (64, 64)


def test_generate_video_on_an_image_model_is_unsupported(tiny: sdcpp.StableDiffusion) -> None:
    assert tiny.supports_images and not tiny.supports_video
    with pytest.raises(sdcpp.UnsupportedError, match="generates images"):
        tiny.generate_video("waves", video_frames=5)


def test_hires_fix_second_pass_at_target_size(tiny: sdcpp.StableDiffusion) -> None:
    hires = sdcpp.HiresFix(
        upscaler="Latent", target_width=128, target_height=128, steps=1, denoising_strength=0.5
    )
    seen: list[sdcpp.Progress] = []
    (image,) = tiny.generate(
        "a cat", seed=2, width=64, height=64, steps=1, hires=hires, progress=seen.append
    )
    assert image.size == (128, 128)
    assert np.asarray(image).std() > 1.0
    # both passes report sampling progress (first pass 1 step, then the hires pass)
    assert len([p for p in seen if p.phase == "sampling" and p.step == p.total]) >= 2
