"""img2img's images, prepared as A1111 prepares them before sampling.

``resize_mode``: 0 stretch to width x height, 1 crop to the aspect then resize, 2 fit inside
and fill the borders with the stretched edges, 3 stretch (A1111 does it in latent space).
The mask: white = repaint; ``inpainting_mask_invert`` flips it, ``mask_blur`` feathers it.
Without width/height the init image's own size is used, rounded down to the engine's 64 px.
``inpaint_full_res`` ("only masked", A1111's default): the masked region plus
``inpaint_full_res_padding``, widened to the output's aspect, is cut out and generated at the
full width x height; ``paste_back`` then scales each result down into that region of the
original through the mask, so only the masked part changes and gets the full resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from ...._pngmeta import png_bytes
from ....jobspec.limits import SIDE_STEP
from ...imaging import decode_image
from .schemas import Img2ImgRequest


@dataclass(frozen=True, slots=True)
class PasteBack:
    """Where an "only masked" result goes: ``box`` of ``base`` (PNG), through ``mask`` (PNG)."""

    box: tuple[int, int, int, int]
    base: bytes
    mask: bytes


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


def crop_region(
    mask: Image.Image, padding: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """The mask's bounding box plus ``padding``, widened to the ``width/height`` aspect and
    kept inside the image (A1111's ``expand_crop_region``)."""
    bbox = mask.point(lambda v: 255 if v > 0 else 0).getbbox()
    if bbox is None:
        return (0, 0, mask.width, mask.height)
    x1, y1 = max(0, bbox[0] - padding), max(0, bbox[1] - padding)
    x2, y2 = min(mask.width, bbox[2] + padding), min(mask.height, bbox[3] + padding)
    w, h = x2 - x1, y2 - y1
    if w / h < width / height:  # too narrow: widen around the centre
        want = min(mask.width, round(h * width / height))
        x1 = max(0, min(x1 - (want - w) // 2, mask.width - want))
        x2 = x1 + want
    else:
        want = min(mask.height, round(w * height / width))
        y1 = max(0, min(y1 - (want - h) // 2, mask.height - want))
        y2 = y1 + want
    return (x1, y1, x2, y2)


def prepare(
    req: Img2ImgRequest, max_pixels: int
) -> tuple[bytes, bytes | None, int, int, PasteBack | None]:
    """(init PNG, mask PNG or None, width, height, paste-back or None) for the first of
    ``init_images``."""
    if not req.init_images:
        raise ValueError("init_images: at least one image is required")
    init = decode_image(req.init_images[0], "init_images", max_pixels).convert("RGB")
    width = req.width or _side(init.width)
    height = req.height or _side(init.height)
    init = resized(init, width, height, req.resize_mode)
    if not req.mask:
        return _png(init), None, width, height, None
    mask = decode_image(req.mask, "mask", max_pixels)
    if mask.mode in ("RGBA", "LA") and mask.getchannel("A").getextrema() != (255, 255):
        mask = mask.getchannel("A")  # a transparent brush stroke: alpha is the mask
    mask = resized(mask.convert("L"), width, height, req.resize_mode)
    if req.inpainting_mask_invert:
        mask = ImageOps.invert(mask)
    blur = req.mask_blur if req.mask_blur is not None else max(req.mask_blur_x, req.mask_blur_y)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    if not req.inpaint_full_res:
        return _png(init), _png(mask), width, height, None
    box = crop_region(mask, req.inpaint_full_res_padding, width, height)
    paste = PasteBack(box, _png(init), _png(mask))
    crop_init = init.crop(box).resize((width, height), Image.Resampling.LANCZOS)
    crop_mask = mask.crop(box).resize((width, height), Image.Resampling.LANCZOS)
    return _png(crop_init), _png(crop_mask), width, height, paste


def paste_back(data: bytes, paste: PasteBack) -> bytes:
    """An "only masked" result scaled into its region of the original, through the mask;
    encoded as it came (PNG with its parameters text, JPEG/WebP with their EXIF)."""
    with Image.open(io.BytesIO(data)) as result:
        result.load()
        fmt, exif = result.format or "PNG", result.info.get("exif")
        text = result.info.get("parameters")
        base = Image.open(io.BytesIO(paste.base)).convert("RGB")
        mask = Image.open(io.BytesIO(paste.mask)).convert("L")
        x1, y1, x2, y2 = paste.box
        piece = result.convert("RGB").resize((x2 - x1, y2 - y1), Image.Resampling.LANCZOS)
    base.paste(piece, (x1, y1), mask.crop(paste.box))
    if fmt == "PNG":
        return png_bytes(base, text)
    buf = io.BytesIO()
    base.save(buf, format=fmt, **({"exif": exif} if exif else {}))
    return buf.getvalue()
