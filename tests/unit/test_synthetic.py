"""Tests for the synthetic checkpoint writer (sdcpp.synthetic); header-level, no native code."""

from __future__ import annotations

import filecmp
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdcpp import _safetensors, synthetic
from sdcpp.synthetic import TINY_VARIANT, VARIANTS

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer.text_model."
POSITION_IDS = f"{CLIP}embeddings.position_ids"

# Tensor counts per component (UNet, autoencoder, CLIP text model); the sd1 numbers are those of
# a real SD 1.5 checkpoint without EMA/scheduler buffers.
EXPECTED_COUNTS = {
    "sd1": (686, 248, 197),
    "sd1_tiny": (358, 248, 197),
    "sdxs": (280, 134, 197),
}


def tensors(header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in header.items() if k != "__metadata__"}


def engine_version(names: set[str]) -> str:
    """The relevant part of get_sd_version() in stable-diffusion.cpp's model.cpp."""
    if f"{UNET}middle_block.1.norm.weight" in names:
        return "SD 1.x"
    if any(n.startswith(f"{UNET}output_blocks.7.1.") for n in names):
        return "SD 1.x Tiny UNet"
    return "SDXS (512-DS)"


def check_header(path: Path, variant: str) -> dict[str, dict[str, Any]]:
    header, data_start = _safetensors.read_header(path)
    meta = header["__metadata__"]
    assert meta["sdcpp.synthetic.variant"] == variant
    assert meta["sdcpp.synthetic.format_version"] == str(synthetic.FORMAT_VERSION)
    found = tensors(header)
    specs = synthetic.layout(variant)
    assert list(found) == [s.name for s in specs]
    for spec in specs:
        assert tuple(found[spec.name]["shape"]) == spec.shape, spec.name
    dtypes = {name: info["dtype"] for name, info in found.items()}
    assert dtypes.pop(POSITION_IDS) == "I64"
    assert set(dtypes.values()) == {"F16"}
    end = max(info["data_offsets"][1] for info in found.values())
    assert path.stat().st_size == data_start + end
    return found


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.cached_checkpoint(TINY_VARIANT, tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_layout_counts_and_engine_detection(variant: str) -> None:
    names = [s.name for s in synthetic.layout(variant)]
    assert len(names) == len(set(names))
    counts = tuple(sum(n.startswith(p) for n in names) for p in (UNET, VAE, CLIP))
    assert counts == EXPECTED_COUNTS[variant]
    assert len(names) == sum(counts)
    assert engine_version(set(names)) == synthetic.ENGINE_VERSION_NAMES[variant]


def test_layout_key_shapes() -> None:
    sd1 = {s.name: s.shape for s in synthetic.layout("sd1")}
    assert sd1[f"{UNET}input_blocks.0.0.weight"] == (320, 4, 3, 3)
    assert sd1[f"{UNET}middle_block.1.proj_in.weight"] == (1280, 1280, 1, 1)
    assert sd1[f"{UNET}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 768)
    assert sd1[f"{UNET}output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)
    assert sd1[f"{UNET}output_blocks.11.0.in_layers.2.weight"] == (320, 640, 3, 3)
    assert sd1[f"{UNET}out.2.weight"] == (4, 320, 3, 3)
    assert sd1[f"{VAE}decoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert sd1[f"{VAE}quant_conv.weight"] == (8, 8, 1, 1)
    assert sd1[f"{VAE}post_quant_conv.weight"] == (4, 4, 1, 1)
    assert sd1[f"{CLIP}embeddings.token_embedding.weight"] == (49408, 768)
    assert sd1[f"{CLIP}encoder.layers.11.mlp.fc1.weight"] == (3072, 768)
    assert sd1[POSITION_IDS] == (1, 77)
    params = sum(math.prod(shape) for name, shape in sd1.items() if name.startswith(UNET))
    assert params == 859_520_964  # the SD 1.x UNet

    tiny_unet = {s.name: s.shape for s in synthetic.layout("sd1_tiny")}
    assert tiny_unet[f"{UNET}output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)
    assert tiny_unet[f"{UNET}output_blocks.5.2.conv.weight"] == (640, 640, 3, 3)
    assert f"{UNET}input_blocks.2.0.in_layers.0.weight" not in tiny_unet

    sdxs = {s.name: s.shape for s in synthetic.layout("sdxs")}
    assert f"{UNET}input_blocks.1.1.norm.weight" not in sdxs
    assert sdxs[f"{VAE}decoder.layers.18.weight"] == (3, 64, 3, 3)
    assert sdxs[f"{VAE}encoder.layers.14.weight"] == (4, 64, 3, 3)


def test_values_are_seeded_per_name() -> None:
    spec = synthetic.TensorSpec("x.weight", (64, 576), std=1 / 24)
    f32 = np.dtype("<f4")
    a = synthetic._values(spec, 0, f32)
    assert np.array_equal(a, synthetic._values(spec, 0, f32))
    assert not np.array_equal(a, synthetic._values(spec, 1, f32))
    renamed = synthetic.TensorSpec("y.weight", spec.shape, spec.std)
    assert not np.array_equal(a, synthetic._values(renamed, 0, f32))
    assert a.std() == pytest.approx(1 / 24, rel=0.02)
    assert abs(float(a.mean())) < 0.002
    assert np.all(np.abs(a) <= 1 / 24 * math.sqrt(3))
    norm = synthetic.TensorSpec("n.weight", (8,), mean=1.0)
    assert np.array_equal(synthetic._values(norm, 0, np.dtype("<f2")), np.ones(8, np.float16))


def test_tiny_checkpoint_header(tiny: Path) -> None:
    found = check_header(tiny, TINY_VARIANT)
    assert len(found) == sum(EXPECTED_COUNTS[TINY_VARIANT])
    assert found[f"{UNET}input_blocks.0.0.weight"]["shape"] == [320, 4, 3, 3]
    assert 0.8e9 < tiny.stat().st_size < 1.0e9
    loaded = _safetensors.load(tiny)
    assert np.array_equal(loaded[POSITION_IDS], np.arange(77)[None])
    weight = loaded[f"{UNET}input_blocks.0.0.weight"].astype(np.float32)
    assert np.isfinite(weight).all()
    assert weight.std() == pytest.approx(1 / 6, rel=0.05)
    assert np.all(loaded[f"{UNET}out.0.weight"] == 1)
    assert np.all(loaded[f"{UNET}out.0.bias"] == 0)


def test_tiny_checkpoint_is_deterministic_and_cached(tiny: Path, tmp_path: Path) -> None:
    again = synthetic.write_checkpoint(tmp_path / "again.safetensors", TINY_VARIANT)
    assert filecmp.cmp(tiny, again, shallow=False)
    mtime = tiny.stat().st_mtime_ns
    assert synthetic.cached_checkpoint(TINY_VARIANT, tiny.parent) == tiny
    assert tiny.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        synthetic.write_checkpoint(tmp_path / "x.safetensors", "sd9")
    with pytest.raises(ValueError, match="unknown dtype"):
        synthetic.write_checkpoint(tmp_path / "x.safetensors", "sd1", dtype="q8_0")
    with pytest.raises(ValueError, match="unknown variant"):
        synthetic.cached_checkpoint("sd9", tmp_path)
    with pytest.raises(SystemExit):
        synthetic.main(["sd9", str(tmp_path / "x.safetensors")])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sd1_cached_checkpoint() -> None:
    path = synthetic.cached_checkpoint("sd1")
    found = check_header(path, "sd1")
    assert len(found) == 1131
    assert found[f"{UNET}input_blocks.0.0.weight"]["shape"] == [320, 4, 3, 3]
    assert 2.0e9 < path.stat().st_size < 2.2e9  # 1,066 M parameters in f16
