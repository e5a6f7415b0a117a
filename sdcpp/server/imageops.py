"""Small image operations the API offers beside generation: resize, crop, re-encode.

Inputs are already decoded and checked by ``imaging`` (format allow-list, pixel budget); the
output is always freshly encoded by Pillow, so nothing of the client's file (metadata, odd
chunks, a polyglot tail) is passed back byte for byte.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image, ImageOps

from .exceptions import BadRequest

ResizeMode = Literal["fit", "fill", "stretch"]
ImageFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _working_mode(image: Image.Image) -> Image.Image:
    # palette and 16-bit modes resample badly or not at all; keep alpha when there is one
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def resize(image: Image.Image, width: int, height: int, mode: ResizeMode) -> Image.Image:
    """fit: inside width x height, aspect kept (may be smaller on one side);
    fill: covers width x height, aspect kept, centre cropped to exactly that size;
    stretch: exactly width x height, aspect ignored."""
    image = _working_mode(image)
    method = Image.Resampling.LANCZOS
    if mode == "fit":
        return ImageOps.contain(image, (width, height), method=method)
    if mode == "fill":
        return ImageOps.fit(image, (width, height), method=method)
    return image.resize((width, height), method)


def crop(image: Image.Image, x: int, y: int, width: int, height: int) -> Image.Image:
    if x + width > image.width or y + height > image.height:
        raise BadRequest(
            f"crop box ({x}, {y}, {width}x{height}) is not inside the "
            f"{image.width}x{image.height} image",
        )
    return image.crop((x, y, x + width, y + height))


def encode(image: Image.Image, fmt: ImageFormat, quality: int = 90) -> bytes:
    image = _working_mode(image)
    buf = io.BytesIO()
    if fmt == "jpeg":
        # JPEG has no alpha: flatten onto white rather than let transparent pixels turn black
        if "A" in image.getbands():
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = background
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
    elif fmt == "webp":
        image.save(buf, format="WEBP", quality=quality)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()
