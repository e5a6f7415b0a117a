"""LoRAs named in prompts (<lora:name:weight>) reach the engine and change the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _safetensors

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 1}


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 LoRA on the UNet's output conv (model.diffusion_model.out.2: 320 -> 4 ch)."""
    d = tmp_path_factory.mktemp("loras")
    rng = np.random.default_rng(0)
    key = "model.diffusion_model.out.2"
    _safetensors.save(
        d / "outconv.safetensors",
        {
            f"{key}.lora_down.weight": (rng.standard_normal((4, 320, 3, 3)) * 0.05).astype(
                np.float16
            ),
            f"{key}.lora_up.weight": (rng.standard_normal((4, 4, 1, 1)) * 0.5).astype(np.float16),
            f"{key}.alpha": np.array(4, np.float16),
        },
    )
    return d


def test_prompt_tag_applies_the_lora(tiny_path: Path, lora_dir: Path) -> None:
    lines: list[str] = []
    with sdcpp.StableDiffusion(
        tiny_path, n_threads=2, lora_dir=lora_dir, lora_apply_mode="at_runtime"
    ) as sd:
        plain = np.asarray(sd.generate("a cat", **SMALL)[0]).astype(int)
        sdcpp.set_log_callback(lambda _level, text: lines.append(text))
        try:
            (tagged,) = sd.generate("a cat <lora:outconv:1.0>", **SMALL)
        finally:
            sdcpp.set_log_callback(None)
        again = np.asarray(sd.generate("a cat", **SMALL)[0]).astype(int)
    assert any("(3 / 3) LoRA tensors have been applied" in line for line in lines)
    assert np.abs(np.asarray(tagged).astype(int) - plain).mean() > 1.0
    # at_runtime keeps the base weights untouched: without the tag, the image is as before
    assert np.array_equal(again, plain)
    assert "<lora:outconv:1.0>" in tagged.info["parameters"]


def test_unknown_lora_tag_is_refused_before_generation(tiny: sdcpp.StableDiffusion) -> None:
    with pytest.raises(sdcpp.InvalidArgument, match="no LoRA directory"):
        tiny.generate("a cat <lora:nothing:1>", **SMALL)


def test_embedding_dir_makes_textual_inversions_usable(tiny_path: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _safetensors.save(
        tmp_path / "inkstyle.safetensors",
        {"emb_params": (rng.standard_normal((2, 768)) * 0.5).astype(np.float16)},
    )
    with sdcpp.StableDiffusion(tiny_path, n_threads=2) as plain_sd:
        plain = np.asarray(plain_sd.generate("a cat, inkstyle", **SMALL)[0]).astype(int)
    with sdcpp.StableDiffusion(tiny_path, n_threads=2, embedding_dir=tmp_path) as sd:
        styled = np.asarray(sd.generate("a cat, inkstyle", **SMALL)[0]).astype(int)
        without_word = np.asarray(sd.generate("a cat", **SMALL)[0]).astype(int)
    assert np.abs(styled - plain).mean() > 0.5  # the word now means the embedding's vectors
    assert not np.array_equal(styled, without_word)
