"""PNG output with generation parameters in tEXt chunks, written atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from ._safetensors import atomic_write


def a1111_parameters(params: Mapping[str, Any]) -> str:
    """The "parameters" text AUTOMATIC1111 writes: prompt, negative, then "Key: value, ..."."""
    rest = {
        k: v for k, v in params.items() if k not in ("prompt", "negative_prompt") and v is not None
    }
    lines = [str(params.get("prompt", ""))]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    lines.append(", ".join(f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in rest.items()))
    return "\n".join(lines)


def png_bytes(image: Image.Image, params: Mapping[str, Any] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if params:
        info.add_text("parameters", a1111_parameters(params))
        info.add_text("sdcpp", json.dumps(dict(params), default=str))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(image: Image.Image, path: Path, params: Mapping[str, Any] | None = None) -> None:
    atomic_write(path, [png_bytes(image, params)])
