"""img2img's images, prepared as A1111 prepares them before sampling.

``resize_mode``: 0 stretch to width x height, 1 crop to the aspect then resize, 2 fit inside
and fill the borders with the stretched edges, 3 stretch (A1111 does it in latent space).
The mask: white = repaint; ``inpainting_mask_invert`` flips it, ``mask_blur`` feathers it.
Without width/height the init image's own size is used, rounded down to the engine's 64 px.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps

from ....jobspec.limits import SIDE_STEP
from ...imaging import decode_image
from .schemas import Img2ImgRequest


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def resized(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    if image.size == (width, height):
        return image
    if mode == 1:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == 2:
        inner = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = image.resize((width, height), Image.Resampling.LANCZOS)
        canvas = canvas.filter(ImageFilter.GaussianBlur(max(width, height) // 32 or 1))
        canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
        return canvas
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _side(value: int) -> int:
    return max(SIDE_STEP, value // SIDE_STEP * SIDE_STEP)


def prepare(req: Img2ImgRequest, max_pixels: int) -> tuple[bytes, bytes | None, int, int]:
    """(init PNG, mask PNG or None, width, height) for the first of ``init_images``."""
    if not req.init_images:
        raise ValueError("init_images: at least one image is required")
    init = decode_image(req.init_images[0], "init_images", max_pixels).convert("RGB")
    width = req.width or _side(init.width)
    height = req.height or _side(init.height)
    init = resized(init, width, height, req.resize_mode)
    if not req.mask:
        return _png(init), None, width, height
    mask = decode_image(req.mask, "mask", max_pixels)
    if mask.mode in ("RGBA", "LA") and mask.getchannel("A").getextrema() != (255, 255):
        mask = mask.getchannel("A")  # a transparent brush stroke: alpha is the mask
    mask = resized(mask.convert("L"), width, height, req.resize_mode)
    if req.inpainting_mask_invert:
        mask = ImageOps.invert(mask)
    blur = req.mask_blur if req.mask_blur is not None else max(req.mask_blur_x, req.mask_blur_y)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    return _png(init), _png(mask), width, height
