"""img2img's images, prepared as A1111 prepares them before sampling.

``resize_mode``: 0 stretch to width x height, 1 crop to the aspect then resize, 2 fit inside
and fill the borders with the stretched edges, 3 stretch (A1111 does it in latent space).
The mask: white = repaint; ``inpainting_mask_invert`` flips it, ``mask_blur`` feathers it.
Without width/height the init image's own size is used, rounded down to the engine's 64 px.
``inpaint_full_res`` ("only masked", A1111's default): the masked region plus
``inpaint_full_res_padding``, widened to the output's aspect, is cut out and generated at the
full width x height; ``paste_back`` then scales each result down into that region of the
original through the mask, so only the masked part changes and gets the full resolution.
``inpainting_fill`` then prepares the masked area of each image (``fill.py``: what is exact,
what is a pixel-space approximation).

Several ``init_images`` work as in A1111: one image is the init image of every image of the
batch; ``k`` images (at most ``batch_size``) make the batch ``k`` images, the ``i``-th from
the ``i``-th init image (``Prepared.inits``), all under the one mask; more is refused with
A1111's message.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageFilter, ImageOps

from ...._pngmeta import png_bytes
from ....jobspec.limits import SIDE_STEP
from ...imaging import decode_image
from . import fill
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """img2img's inputs: one init PNG per init image (with its paste-back for "only masked"),
    the one mask PNG (None: plain img2img) and the output size."""

    width: int
    height: int
    inits: list[bytes] = field(default_factory=list)
    mask: bytes | None = None
    pastes: list[PasteBack | None] = field(default_factory=list)


def _mask(req: Img2ImgRequest, max_pixels: int, width: int, height: int) -> Image.Image:
    assert req.mask is not None
    mask = decode_image(req.mask, "mask", max_pixels)
    if mask.mode in ("RGBA", "LA") and mask.getchannel("A").getextrema() != (255, 255):
        mask = mask.getchannel("A")  # a transparent brush stroke: alpha is the mask
    mask = resized(mask.convert("L"), width, height, req.resize_mode)
    if req.inpainting_mask_invert:
        mask = ImageOps.invert(mask)
    blur = req.mask_blur if req.mask_blur is not None else max(req.mask_blur_x, req.mask_blur_y)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    return mask


def prepare(req: Img2ImgRequest, max_pixels: int, seed: int = 0) -> Prepared:
    """The init images, mask and size ``req`` asks for; ``seed`` is the first job's (the
    ``i``-th image's "latent noise" fill uses ``seed + i``, as A1111 seeds its batch)."""
    if not req.init_images:
        raise ValueError("init_images: at least one image is required")
    count = len(req.init_images)
    if count > 1 and count > req.batch_size:
        raise ValueError(
            f"bad number of images passed: {count}; expecting {req.batch_size} or less"
        )
    images = [
        decode_image(text, f"init_images[{i}]" if count > 1 else "init_images", max_pixels)
        for i, text in enumerate(req.init_images)
    ]
    width = req.width or _side(images[0].width)
    height = req.height or _side(images[0].height)
    inits = [resized(image.convert("RGB"), width, height, req.resize_mode) for image in images]
    if not req.mask:
        return Prepared(width, height, [_png(init) for init in inits], None, [None] * count)
    mask = job_mask = _mask(req, max_pixels, width, height)
    box = None
    if req.inpaint_full_res:
        box = crop_region(mask, req.inpaint_full_res_padding, width, height)
        job_mask = mask.crop(box).resize((width, height), Image.Resampling.LANCZOS)
    out = Prepared(width, height, mask=_png(job_mask))
    whole_mask = _png(mask)
    for i, init in enumerate(inits):
        paste = None
        if box is not None:  # "only masked": each result goes back into its own original
            paste = PasteBack(box, _png(init), whole_mask)
            init = init.crop(box).resize((width, height), Image.Resampling.LANCZOS)
        out.inits.append(_png(fill.apply(init, job_mask, req.inpainting_fill, seed + i)))
        out.pastes.append(paste)
    return out


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
