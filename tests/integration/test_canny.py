from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import sdcpp
from sdcpp.images import canny


def test_canny_marks_the_edges_of_a_square() -> None:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    edges = np.asarray(canny(image).convert("L")).astype(int)
    assert edges.shape == (64, 64)
    assert edges[16:48, 14:19].max() > 128  # left edge of the square is found
    assert edges[28:36, 28:36].max() < 64  # flat interior is not an edge
    assert edges[0:8, 0:8].max() < 64  # flat background is not an edge
    inverted = np.asarray(canny(image, inverse=True).convert("L")).astype(int)
    assert inverted[0:8, 0:8].min() > 128


def test_canny_rejects_bad_thresholds() -> None:
    with pytest.raises(sdcpp.InvalidArgument):
        canny(Image.new("RGB", (8, 8)), high_threshold=2.0)
