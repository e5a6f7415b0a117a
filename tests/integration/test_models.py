"""Loading failures, conversion to GGUF, and generation from converted files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _safetensors
from sdcpp.gguf import read_gguf

SMALL = {"width": 64, "height": 64, "steps": 1, "seed": 9}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(sdcpp.ModelLoadError, match="not found"):
        sdcpp.StableDiffusion(tmp_path / "missing.safetensors")


def test_no_model_at_all() -> None:
    with pytest.raises(sdcpp.InvalidArgument, match="model="):
        sdcpp.StableDiffusion()


def test_truncated_checkpoint(tiny_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    with tiny_path.open("rb") as src:
        cut.write_bytes(src.read(tiny_path.stat().st_size // 2))
    with pytest.raises(sdcpp.ModelLoadError, match="truncated"):
        sdcpp.StableDiffusion(cut)


def test_valid_file_of_unknown_model_carries_engine_reason(tmp_path: Path) -> None:
    path = tmp_path / "odd.safetensors"
    _safetensors.save(path, {"not.a.diffusion.tensor": np.ones((4, 4), np.float16)})
    with pytest.raises(sdcpp.ModelLoadError) as info:
        sdcpp.StableDiffusion(path, n_threads=2)
    assert str(info.value).startswith("failed to load model: ")  # plus the engine's error line


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_convert_then_generate(tiny_path: Path, tmp_path: Path, qtype: str) -> None:
    out = sdcpp.convert(tiny_path, tmp_path / f"tiny-{qtype}.gguf", type=qtype)
    assert out.exists() and not list(tmp_path.glob(".*"))  # no temp file left behind
    info = read_gguf(out)
    types = {t.type_name for t in info.tensors}
    assert qtype in types
    assert info.data_end <= out.stat().st_size
    with sdcpp.StableDiffusion(out, n_threads=2) as sd:
        (image,) = sd.generate("a cat", **SMALL)
    assert np.asarray(image).std() > 1.0


def test_convert_rejects_bad_requests(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(sdcpp.InvalidArgument, match="unknown type"):
        sdcpp.convert(tiny_path, tmp_path / "x.gguf", type="q9_9")
    with pytest.raises(sdcpp.InvalidArgument, match=r"\.gguf"):
        sdcpp.convert(tiny_path, tmp_path / "x.bin", type="q8_0")
    with pytest.raises(sdcpp.ModelLoadError, match="not found"):
        sdcpp.convert(tmp_path / "missing.safetensors", tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []
