"""Conversions between what users hold (PIL images, numpy arrays) and what the engine takes
(C-contiguous uint8 arrays, H x W x C). Validation happens here, before native code runs."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from .errors import InvalidArgument

ImageLike = Image.Image | np.ndarray

__all__ = ["ImageLike", "canny", "to_array", "to_pil"]


def to_array(image: Any, *, channels: int = 3, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 array of shape (H, W, channels).

    PIL images are converted to RGB (or L for one channel). numpy arrays must already be uint8:
    silently rescaling floats would hide bugs, so another dtype is an error.
    """
    if isinstance(image, Image.Image):
        mode = "L" if channels == 1 else "RGB"
        array = np.asarray(image.convert(mode) if image.mode != mode else image)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise InvalidArgument(f"{name}: numpy image must have dtype uint8, got {image.dtype}")
        array = image
    else:
        raise InvalidArgument(
            f"{name}: expected a PIL image or a numpy array, got {type(image).__name__}"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidArgument(f"{name}: expected shape (H, W[, C]), got {array.shape}")
    have = array.shape[2]
    if have != channels:
        if channels == 1 and have in (3, 4):
            array = np.asarray(Image.fromarray(np.ascontiguousarray(array[:, :, :3])).convert("L"))[
                :, :, None
            ]
        elif channels == 3 and have == 1:
            array = np.repeat(array, 3, axis=2)
        elif channels == 3 and have == 4:
            array = array[:, :, :3]
        else:
            raise InvalidArgument(f"{name}: cannot use a {have}-channel image here")
    return np.ascontiguousarray(array)


def to_pil(array: np.ndarray) -> Image.Image:
    """An engine image (H, W, C uint8) as a PIL image (RGB, RGBA or L)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def canny(
    image: ImageLike,
    *,
    high_threshold: float = 0.08,
    low_threshold: float = 0.08,
    weak: float = 0.8,
    strong: float = 1.0,
    inverse: bool = False,
) -> Image.Image:
    """Canny edge map of ``image`` (the engine's preprocessor, as used for ControlNet)."""
    from . import _native

    for name, value in (
        ("high_threshold", high_threshold),
        ("low_threshold", low_threshold),
        ("weak", weak),
        ("strong", strong),
    ):
        if not 0.0 <= value <= 1.0:
            raise InvalidArgument(f"{name} must be between 0 and 1")
    array = to_array(image, name="image")
    return to_pil(
        _native.preprocess_canny(array, high_threshold, low_threshold, weak, strong, inverse)
    )
