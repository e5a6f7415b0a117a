"""The multipart side of /v1/images/edits and /v1/images/variations, as the SDK sends it.

Files arrive as ``image`` (one, or repeated), ``image[]`` (the SDK's list form) and ``mask``;
every other part is a text field validated by the request model. Images are decoded and
checked with Pillow here (PNG/JPEG/WebP, the pixel budget) and stored as PNG in the job's
input folder, so nothing a client sent reaches native code unchecked.

OpenAI's mask: an image the size of the first ``image`` whose *transparent* pixels (alpha 0)
mark the area to edit. The engine's mask: white = repaint. So the engine gets 255 - alpha.
An edit sent without a mask whose first image has transparent pixels is DALL-E 2's case ("if
mask is not provided, image must have transparency, which will be used as the mask"): that
image's own alpha is the mask. An opaque image without a mask is an edit of the whole image.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ....jobspec.limits import SIDE_STEP
from ....registry import ModelType
from ....registry.errors import ModelNotFoundError
from ...exceptions import BadRequest
from ...imaging import decode_bytes, store_input
from .schemas import parse_size

IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
# Detection ids of the families that read reference images (sd.cpp's ref_images): FLUX.1
# Kontext, Qwen-Image-Edit, FLUX.2. Other models take the first image as the init image.
REF_ARCHITECTURES = ("flux_kontext", "qwen_image_edit", "flux2")
MAX_IMAGES = 16
FILE_FIELDS = ("image", "image[]", "mask")


class FormError(ValueError):
    """A refused form part: OpenAI answers 400 with ``param`` naming it."""

    def __init__(self, param: str | None, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


@dataclass
class Form:
    fields: dict[str, Any]
    images: list[bytes] = field(default_factory=list)
    mask: bytes | None = None


async def read_form(request: Request) -> Form:
    """Text fields (JSON-decoded ``loras``) and the image/mask files of a multipart body."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise FormError(None, "this endpoint takes multipart/form-data (image files and fields)")
    try:
        return await _parts(request)
    except HTTPException as exc:  # Starlette's refusal of a malformed or oversized form
        raise FormError(None, f"the multipart body was refused: {exc.detail}") from None


async def _parts(request: Request) -> Form:
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    async with request.form(max_files=MAX_IMAGES + 1, max_fields=200) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if key in ("image", "image[]"):
                    images.append(data)
                elif key == "mask":
                    mask = data
                else:
                    raise FormError(key, f"Unknown parameter: '{key}'.", "unknown_parameter")
            elif key in FILE_FIELDS:
                raise FormError(key, f"{key} must be a file")
            else:
                fields[key] = value
    if isinstance(fields.get("loras"), str):
        try:
            fields["loras"] = json.loads(fields["loras"])
        except ValueError:
            raise FormError("loras", 'loras: a JSON list of {"name", "weight"}') from None
    if isinstance(cache := fields.get("cache"), str) and cache.lstrip().startswith("{"):
        try:
            fields["cache"] = json.loads(cache)
        except ValueError:
            raise FormError("cache", 'cache: a preset, a mode, or {"mode", "settings"}') from None
    return Form(fields, images, mask)


def decode(raw: bytes, param: str, max_pixels: int) -> Image.Image:
    """A client's image, checked by Pillow; refusals name the form field."""
    try:
        return decode_bytes(raw, param, max_pixels)
    except BadRequest as exc:  # an unreadable image; one too large stays a 413
        raise FormError(param, exc.message, "invalid_image") from None


def output_size(size: str | None, image: Image.Image) -> tuple[int, int]:
    """The requested size, else the image's own rounded to the engine's 64 px steps."""
    width, height = parse_size(size)
    if width is not None and height is not None:
        return width, height
    return tuple(max(SIDE_STEP, round(side / SIDE_STEP) * SIDE_STEP) for side in image.size)  # type: ignore[return-value]


def engine_mask(mask: Image.Image, image: Image.Image) -> Image.Image:
    """OpenAI's mask (transparent = edit) as the engine's (white = repaint), mode L."""
    if mask.size != image.size:
        raise FormError(
            "mask",
            f"the mask is {mask.width}x{mask.height}, the image {image.width}x{image.height}: "
            "they must be the same size",
        )
    has_alpha = "A" in mask.getbands() or "transparency" in mask.info
    if not has_alpha:
        raise FormError(
            "mask", "the mask has no alpha channel: its transparent pixels mark the area to edit"
        )
    return ImageOps.invert(mask.convert("RGBA").getchannel("A"))


def has_transparency(image: Image.Image) -> bool:
    """Whether some pixel of ``image`` is not fully opaque."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return False
    low = image.convert("RGBA").getchannel("A").getextrema()[0]  # one band: (min, max)
    return isinstance(low, int | float) and low < 255


def takes_ref_images(registry: Any, model: str | None, default: str | None) -> bool:
    """Whether the model that will run reads reference images (by its detected family)."""
    name = model or default
    try:
        if name:
            entry = registry.get(name, type=IMAGE_TYPES)
        else:
            entry = registry.list(type=IMAGE_TYPES, limit=1).items[0]
    except (ModelNotFoundError, IndexError):
        return False
    return str(entry.architecture).startswith(REF_ARCHITECTURES)


def edit_images(
    form: Form,
    size: str | None,
    inputs: Path,
    max_pixels: int,
    ref_model: bool,
    alpha_mask: bool = True,
) -> tuple[tuple[int, int], dict[str, Any]]:
    """(output size, the spec's image fields) for an edit: images checked and stored.

    A model that reads reference images gets all of them as ``ref_images`` (and, with a mask,
    the first as init image too); any other model the first as init image, resized to the
    output size, with the mask inpainting it. Without a mask, ``alpha_mask`` (edits, not
    variations) takes the first image's transparent area as the mask."""
    if not form.images:
        raise FormError("image", "image is required: one file, or several as image[]")
    if len(form.images) > MAX_IMAGES:
        raise FormError("image", f"at most {MAX_IMAGES} images")
    images = [decode(raw, "image", max_pixels) for raw in form.images]
    first = images[0]
    mask = engine_mask(decode(form.mask, "mask", max_pixels), first) if form.mask else None
    if mask is None and alpha_mask and has_transparency(first):
        mask = engine_mask(first, first)  # DALL-E 2: the image's transparent area is the mask
    width, height = output_size(size, first)
    fields: dict[str, Any] = {}
    if ref_model:
        fields["ref_images"] = tuple(
            str(store_input(img, inputs, f"ref_{i}")) for i, img in enumerate(images)
        )
    if mask is not None or not ref_model:
        init = first.convert("RGB")
        if init.size != (width, height):
            init = init.resize((width, height), Image.Resampling.LANCZOS)
        fields["init_image"] = str(store_input(init, inputs, "init"))
    if mask is not None:
        if mask.size != (width, height):
            mask = mask.resize((width, height), Image.Resampling.BILINEAR)
        fields["mask_image"] = str(store_input(mask, inputs, "mask", mode="L"))
    return (width, height), fields


def embedded_prompt(raw: bytes) -> str:
    """The prompt an image says it was made from (A1111/sdcpp PNG ``parameters``), or ''."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            text = str(image.info.get("parameters", ""))
    except (OSError, ValueError):
        return ""
    return text.split("\nNegative prompt:")[0].split("\nSteps:")[0].strip()
