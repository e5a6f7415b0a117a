"""Images arriving in requests: base64 or data: URLs, decoded and checked before queueing.

Only PNG, JPEG and WebP are accepted (checked from the bytes, not the claimed type), within a
pixel budget (Pillow's decompression-bomb guard, set from settings); the decoded image is
re-encoded as PNG into the job's input folder, so the worker never parses client bytes itself.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .._pngmeta import png_bytes
from .._safetensors import atomic_write
from .exceptions import BadRequest, PayloadTooLarge

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


def decode_image(text: str, field: str, max_pixels: int) -> Image.Image:
    return decode_bytes(_b64(text, field), field, max_pixels)


def decode_bytes(raw: bytes, field: str, max_pixels: int) -> Image.Image:
    """The checks of ``decode_image`` for bytes that arrived some other way (a download)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                image = Image.open(io.BytesIO(raw))
                if image.format not in ALLOWED_FORMATS:
                    raise BadRequest(
                        f"{field}: format {image.format} not allowed (PNG, JPEG, WebP)",
                    )
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{field}: more than {max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"{field}: {_unreadable(raw, exc)}") from exc
    return image


def _unreadable(raw: bytes, exc: Exception) -> str:
    """Why an image could not be read, in words (Pillow's own messages name its file object,
    ``<_io.BytesIO object at 0x...>``, which means nothing to a client)."""
    if not raw:
        return "empty image data"
    if isinstance(exc, UnidentifiedImageError):
        return f"not a PNG, JPEG or WebP image ({len(raw)} bytes of unknown format)"
    return f"a damaged or truncated image ({type(exc).__name__})"


def _b64(text: str, field: str) -> bytes:
    payload = _DATA_URL.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field}: not valid base64") from None


def store_input(image: Image.Image, folder: Path, name: str, mode: str = "RGB") -> Path:
    """Save a decoded request image as PNG (atomically) for the worker to read."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    atomic_write(path, [png_bytes(image.convert(mode))])
    return path


def thumbnail(source: Path, target: Path, size: int) -> Path:
    """A cached thumbnail (longest side ``size``), made once per (file, size)."""
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    with Image.open(source) as image:
        image.thumbnail((size, size))
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="WEBP", quality=80)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, [buf.getvalue()])
    return target
