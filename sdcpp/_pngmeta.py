"""PNG output carrying the A1111 "parameters" text, written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, PngImagePlugin

from ._safetensors import atomic_write


def png_bytes(image: Image.Image, parameters: str | None = None) -> bytes:
    """Encode ``image`` as PNG with ``parameters`` (default: ``image.info["parameters"]``)."""
    info = PngImagePlugin.PngInfo()
    text = parameters if parameters is not None else image.info.get("parameters")
    if text:
        info.add_text("parameters", str(text))
    buf = io.BytesIO()
    # Format from a ".png" name rather than format="PNG": Pillow (>= 12) then loads only the PNG
    # plugin instead of also BMP, GIF, JPEG (+ subprocess) and PPM (~9 ms of a CLI run).
    buf.name = "image.png"
    image.save(buf, pnginfo=info)
    return buf.getvalue()


def save_png(image: Image.Image, path: Path, parameters: str | None = None) -> None:
    atomic_write(path, [png_bytes(image, parameters)])
