"""From a ``run`` message's params to library calls, and from images to output files.

Runs inside the worker process only (it imports the library). Params are plain dicts (see
``protocol``); everything a user could get wrong becomes ``InvalidArgument`` here, before any
model is loaded, so a bad request never costs a model switch.
"""

from __future__ import annotations

import inspect
import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ... import images
from ..._context import MODEL_FILES
from ..._files import check_model_file
from ..._generation import GenerationRequest, build_img_params
from ..._pngmeta import png_bytes
from ..._safetensors import atomic_write
from ...errors import InvalidArgument
from ...jobspec.codec import build as _build
from ...options import CacheOptions, HiresFix, Lora, SkipLayerGuidance, VaeTiling
from ...stable_diffusion import StableDiffusion

# StableDiffusion() keywords a job may set: model files and context options alike.
CONTEXT_KEYS = frozenset(inspect.signature(StableDiffusion.__init__).parameters) - {
    "self",
    "progress",
}
FILE_KEYS = frozenset(MODEL_FILES)
# Images travel as file paths (the server stores uploads); these map to request fields.
IMAGE_PATHS = {
    "init_image_path": "init_image",
    "mask_image_path": "mask_image",
    "control_image_path": "control_image",
}
IMAGE_PATH_LISTS = {
    "ref_image_paths": "ref_images",
    "photo_maker_image_paths": "photo_maker_images",
}
GENERATION_KEYS = frozenset(f.name for f in fields(GenerationRequest)) - {
    "prompt",
    "extra",
    *IMAGE_PATHS.values(),
    *IMAGE_PATH_LISTS.values(),
}
# Nested options arrive as dicts; the library takes its own frozen dataclasses.
STRUCTURED: dict[str, type] = {
    "vae_tiling": VaeTiling,
    "hires": HiresFix,
    "skip_layer_guidance": SkipLayerGuidance,
    "cache": CacheOptions,
}
OUTPUT_FORMATS = {"png": ("PNG", "png"), "jpeg": ("JPEG", "jpg"), "webp": ("WEBP", "webp")}
PREVIEW_MAX_SIDE = 256
UPSCALE_KEYS = frozenset(
    {"upscaler", "image_path", "factor", "n_threads", "tile_size", "offload_params_to_cpu"}
)
# Kept by the server for display (the job's prompt, the source size); the upscaler ignores them.
UPSCALE_INFO_KEYS = frozenset({"prompt", "width", "height"})


@dataclass(frozen=True, slots=True)
class Output:
    format: str = "png"
    quality: int = 90


@dataclass(frozen=True, slots=True)
class ImageJob:
    context: dict[str, Any]  # StableDiffusion(**context)
    prompt: str
    options: dict[str, Any]  # generate(prompt, **options)
    output: Output
    preview: bool
    preview_options: dict[str, Any]

    @property
    def context_key(self) -> str:
        return cache_key(self.context)


@dataclass(frozen=True, slots=True)
class UpscaleJob:
    model: str
    image_path: str
    factor: int | None
    options: dict[str, Any]  # Upscaler(model, **options)
    output: Output

    @property
    def context_key(self) -> str:
        return cache_key({"model": self.model, **self.options})


def cache_key(context: Mapping[str, Any]) -> str:
    """Equal for two contexts that would load the same weights the same way.

    Paths are resolved (symlinks, ``..``) so two spellings of one file share a cache entry.
    """
    resolved = {
        key: os.path.realpath(value) if key in FILE_KEYS and isinstance(value, str) else value
        for key, value in context.items()
        if value is not None
    }
    return json.dumps(resolved, sort_keys=True, default=str)


def context_bytes(context: Mapping[str, Any]) -> int:
    """The model cache's size estimate of a context: the bytes of the files it loads."""
    total = 0
    for key in FILE_KEYS & set(context):
        if isinstance(context[key], str) and os.path.isfile(context[key]):
            total += os.path.getsize(context[key])
    return total


def check_files(context: Mapping[str, Any]) -> None:
    """ModelLoadError for a missing or damaged model file, before anything is unloaded."""
    for key in sorted(FILE_KEYS & set(context)):
        if context[key] is not None:
            check_model_file(context[key], key)


def parse_image_job(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> ImageJob:
    """Split params into context keywords, generation options and output settings.

    ``defaults`` (from the worker settings) fill context options the job leaves out, e.g.
    ``n_threads``. Unknown keys are refused: a typo must not silently change nothing.
    """
    params = dict(params)
    output = _output(params)
    preview = params.pop("preview", True)
    if not isinstance(preview, bool):
        raise InvalidArgument("preview must be true or false")
    preview_options: dict[str, Any] = {
        key: params.pop(key) for key in ("preview_mode", "preview_interval") if key in params
    }
    prompt = params.pop("prompt", "")
    canny = params.pop("canny", False)
    if not isinstance(canny, bool):
        raise InvalidArgument("canny must be true or false")
    context = {key: value for key, value in defaults.items() if key in CONTEXT_KEYS}
    options: dict[str, Any] = {}
    for key, value in params.items():
        if key in CONTEXT_KEYS:
            context[key] = value
        elif key in GENERATION_KEYS:
            options[key] = _structured(key, value)
        elif key in IMAGE_PATHS:
            if value is not None:
                options[IMAGE_PATHS[key]] = open_image(value, key)
        elif key in IMAGE_PATH_LISTS:
            options[IMAGE_PATH_LISTS[key]] = [open_image(v, key) for v in value or ()]
        else:
            raise InvalidArgument(f"unknown parameter {key!r}")
    if not context.get("model") and not context.get("diffusion_model"):
        raise InvalidArgument("params need a model (an absolute path)")
    if canny:
        if "control_image" not in options:
            raise InvalidArgument("canny needs a control image")
        # The engine's own preprocessor, as sd-cli --canny applies it to the control image.
        options["control_image"] = images.canny(options["control_image"])
    _validate(prompt, options)
    return ImageJob(context, prompt, options, output, preview, preview_options)


def parse_load(params: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The StableDiffusion() keywords of a ``load`` message: only context keys, merged with
    ``defaults`` exactly as ``parse_image_job`` merges them, so that a later job naming the
    same model and options finds it loaded."""
    if not isinstance(params, Mapping):
        raise InvalidArgument("load params must be an object")
    if unknown := set(params) - CONTEXT_KEYS:
        raise InvalidArgument(f"unknown parameter {sorted(unknown)[0]!r}")
    context = {key: value for key, value in defaults.items() if key in CONTEXT_KEYS}
    context.update(params)
    if not isinstance(context.get("model") or context.get("diffusion_model"), str):
        raise InvalidArgument("params need a model (an absolute path)")
    return context


def model_label(context: Mapping[str, Any]) -> str | None:
    """The file the server names a loaded context by: the checkpoint, else the diffusion model."""
    label = context.get("model") or context.get("diffusion_model")
    return str(label) if label else None


def _validate(prompt: Any, options: dict[str, Any]) -> None:
    """Run the library's own request checks now (they need no model): a bad size or step
    count must fail before a model switch, not after loading gigabytes."""
    seed = options.get("seed")
    valid_seed = seed if isinstance(seed, int) and seed >= 0 else 0  # random seeds: any
    try:
        build_img_params(GenerationRequest(prompt=prompt, **options), valid_seed)
    except TypeError as exc:
        raise InvalidArgument(str(exc)) from None


def parse_upscale_job(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> UpscaleJob:
    params = dict(params)
    output = _output(params)
    unknown = set(params) - UPSCALE_KEYS - UPSCALE_INFO_KEYS
    if unknown:
        raise InvalidArgument(f"unknown parameter {sorted(unknown)[0]!r}")
    for key in ("upscaler", "image_path"):
        if not isinstance(params.get(key), str):
            raise InvalidArgument(f"upscale needs {key} (a path)")
    settings = UPSCALE_KEYS - {"upscaler", "image_path", "factor"}
    options = {key: value for key, value in params.items() if key in settings}
    if "n_threads" not in options and defaults.get("n_threads") is not None:
        options["n_threads"] = defaults["n_threads"]
    return UpscaleJob(
        params["upscaler"], params["image_path"], params.get("factor"), options, output
    )


def _output(params: dict[str, Any]) -> Output:
    fmt = params.pop("output_format", "png") or "png"
    quality = params.pop("output_quality", None)
    if fmt not in OUTPUT_FORMATS:
        raise InvalidArgument(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}")
    if quality is None:
        return Output(fmt)
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise InvalidArgument(f"output_quality must be an integer from 1 to 100, got {quality!r}")
    return Output(fmt, quality)


def _structured(key: str, value: Any) -> Any:
    if key == "loras" and value is not None:
        return [_build(Lora, item, "loras") for item in value]
    if key in STRUCTURED and isinstance(value, Mapping):
        if key == "skip_layer_guidance" and "layers" in value:
            value = {**value, "layers": tuple(value["layers"])}
        return _build(STRUCTURED[key], value, key)
    return value


def open_image(path: Any, name: str) -> Image.Image:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"{name} must be a file path")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()  # detached from the file, which is closed here
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidArgument(f"{name}: cannot read image {path}: {exc}") from None


# -- outputs --------------------------------------------------------------------------------
def encode_image(image: Image.Image, output: Output) -> bytes:
    """The file bytes for ``image``; its A1111 parameters go into the PNG text chunk, or into
    EXIF UserComment for JPEG/WebP (where A1111 puts them)."""
    if output.format == "png":
        return png_bytes(image)
    pil_format, _ = OUTPUT_FORMATS[output.format]
    if output.format == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # JPEG has no alpha channel
    buf = io.BytesIO()
    extra: dict[str, Any] = {}
    if text := image.info.get("parameters"):
        exif = Image.Exif()
        # 0x8769: the Exif IFD; 0x9286: UserComment, with the "UNICODE" charset prefix.
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + str(text).encode("utf-16-be")
        extra["exif"] = exif.tobytes()
    image.save(buf, format=pil_format, quality=output.quality, **extra)
    return buf.getvalue()


def write_outputs(
    images: list[Image.Image],
    output_dir: str | os.PathLike[str],
    output: Output,
    on_saved: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write ``image_{i}.{ext}`` atomically into ``output_dir`` (created); return the names."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    _, ext = OUTPUT_FORMATS[output.format]
    names = []
    for i, image in enumerate(images):
        name = f"image_{i}.{ext}"
        atomic_write(directory / name, [encode_image(image, output)])
        names.append(name)
        if on_saved is not None:
            on_saved(i + 1, len(images))
    return names


def preview_png(image: Image.Image, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """A small PNG of a preview frame: cheap to pickle and to push to browsers."""
    small = image.copy()
    small.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    small.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
