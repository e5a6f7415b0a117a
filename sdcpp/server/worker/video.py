"""Video jobs in the worker: params to a planned context and ``generate_video`` options, and
frames to output files.

Video models come as standalone diffusion weights that need companions (a Wan VAE, UMT5-XXL,
CLIP vision for I2V, the second Wan 2.2 expert). When the params carry ``models_dir`` the
companions are chosen by ``sdcpp.plan`` from that directory, as ``from_models_dir`` does;
explicit companion paths in the params win. Without it, the params' paths are used as given.
Like image jobs, everything a user could get wrong fails here, before any model is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from ..._pngmeta import png_bytes
from ..._safetensors import atomic_write
from ...detect import MODEL_IDS
from ...errors import InvalidArgument, ModelLoadError, UnsupportedError
from ...plan import (
    COMPANION_SLOTS,
    ContextPlan,
    load_with_fallback,
    plan_from_registry,
    raise_if_missing,
    raise_if_unsupported,
)
from ...registry import ModelRegistry, RegistryError
from ...video import VideoRequest, build_vid_params, save_animation
from .jobs import CONTEXT_KEYS, FILE_KEYS, _structured, cache_key, open_image

logger = logging.getLogger(__name__)

T = TypeVar("T")

IMAGE_PATHS = {"init_image_path": "init_image", "end_image_path": "end_image"}
VIDEO_KEYS = frozenset(f.name for f in fields(VideoRequest)) - {
    "prompt",
    "control_frames",  # VACE control videos: not offered by the server yet
    *IMAGE_PATHS.values(),
}
ANIMATION_FORMATS = ("webp", "gif")
# Detected ids of families that only make images: refused before a model switch. Anything else
# (the video families, "unknown") goes to the engine, which has the final word.
IMAGE_ONLY_IDS = frozenset(i for i in MODEL_IDS if not i.startswith(("wan", "ltx")))


@dataclass(frozen=True, slots=True)
class VideoOutput:
    format: str = "webp"
    fps: float = 16.0
    quality: int | None = None  # WebP quality; None: lossless


@dataclass(frozen=True, slots=True)
class VideoJob:
    context: dict[str, Any]  # StableDiffusion(**context), companions included
    prompt: str
    options: dict[str, Any]  # generate_video(prompt, **options)
    output: VideoOutput
    plan: ContextPlan | None  # set when the companions came from a models dir

    @property
    def context_key(self) -> str:
        return cache_key(self.context)

    def settings(self) -> dict[str, Any]:
        """The context without its files: what ``load_with_fallback`` takes beside the plan."""
        return {k: v for k, v in self.context.items() if k not in FILE_KEYS}


def parse_video_job(
    params: Mapping[str, Any],
    defaults: Mapping[str, Any],
    registries: MutableMapping[str, ModelRegistry] | None = None,
) -> VideoJob:
    """Split params into context, ``generate_video`` options and output settings.

    ``defaults`` fill context options the job leaves out (``n_threads``); ``registries`` keeps
    one registry per models dir between jobs, so unchanged files are not detected again.
    Fields the job leaves out take the planned architecture's recommended settings.
    """
    params = dict(params)
    output = _video_output(params)
    prompt = params.pop("prompt", "")
    models_dir = params.pop("models_dir", None)
    context = {key: value for key, value in defaults.items() if key in CONTEXT_KEYS}
    options: dict[str, Any] = {}
    for key, value in params.items():
        if key in CONTEXT_KEYS:
            context[key] = value
        elif key in VIDEO_KEYS:
            options[key] = _structured(key, value)
        elif key in IMAGE_PATHS:
            if value is not None:
                options[IMAGE_PATHS[key]] = open_image(value, key)
        else:
            raise InvalidArgument(f"unknown parameter {key!r}")
    context = {k: v for k, v in context.items() if v is not None}
    if not context.get("model") and not context.get("diffusion_model"):
        raise InvalidArgument("params need a model (an absolute path)")
    plan = None
    if models_dir is not None:
        if not isinstance(models_dir, str | os.PathLike):
            raise InvalidArgument("models_dir must be a path")
        registry = _registry(registries if registries is not None else {}, str(models_dir))
        context, plan = plan_context(registry, context)
        for key, value in plan.defaults.video_options().items():
            options.setdefault(key, value)
    _validate(prompt, options)
    return VideoJob(context, prompt, options, output, plan)


def plan_context(
    registry: ModelRegistry, context: dict[str, Any]
) -> tuple[dict[str, Any], ContextPlan]:
    """The context with the model's load method and companions planned from ``registry``.

    Companion paths already in ``context`` override the plan; the plan's required settings
    apply unless ``context`` sets them. Missing companions raise ModelLoadError naming them.
    """
    context = dict(context)
    main = context.pop("model", None) or context.pop("diffusion_model")
    relpath = os.path.relpath(os.path.abspath(main), os.path.abspath(registry.root))
    if relpath.startswith(os.pardir):
        raise InvalidArgument(f"model {main} is not inside models_dir {registry.root}")
    try:
        plan = plan_from_registry(registry, Path(relpath).as_posix())
    except RegistryError as exc:
        raise ModelLoadError(f"model {main}: {exc}") from None
    detected = getattr(plan.detection, "id", None)
    if detected in IMAGE_ONLY_IDS:
        raise UnsupportedError(f"{plan.name} generates images, not video; use an image job")
    overrides = {slot: context.pop(slot) for slot in COMPANION_SLOTS if slot in context}
    plan = plan.with_overrides(overrides)
    raise_if_unsupported(plan)
    raise_if_missing(plan)
    for note in plan.notes:
        logger.info("%s: %s", plan.name, note)
    return {**plan.context, **context, **plan.loader_kwargs()}, plan


def load_engine(spec: VideoJob, loader: Callable[..., T], progress: Callable[..., Any]) -> T:
    """``loader(**context)``; with a plan, seed 002's fallback to the other load method."""
    if spec.plan is None:
        return loader(**spec.context, progress=progress)
    loaded: T = load_with_fallback(spec.plan, loader=loader, progress=progress, **spec.settings())
    return loaded


def _registry(registries: MutableMapping[str, ModelRegistry], models_dir: str) -> ModelRegistry:
    registry = registries.get(models_dir)
    if registry is None:
        # No data_dir: the server's registry owns the hash cache file; this one only plans.
        registry = registries[models_dir] = ModelRegistry(models_dir)
    registry.refresh()  # files may have come or gone since the last job
    return registry


def _video_output(params: dict[str, Any]) -> VideoOutput:
    fmt = params.pop("output_format", "webp") or "webp"
    fps = params.pop("fps", 16.0)
    quality = params.pop("output_quality", None)
    if fmt not in ANIMATION_FORMATS:
        raise InvalidArgument(f"output_format must be one of {', '.join(ANIMATION_FORMATS)}")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 240:
        raise InvalidArgument(f"fps must be a number above 0 and at most 240, got {fps!r}")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        raise InvalidArgument(f"output_quality must be an integer from 1 to 100, got {quality!r}")
    return VideoOutput(fmt, float(fps), quality)


def _validate(prompt: Any, options: dict[str, Any]) -> None:
    """The library's own checks (sizes, frame counts, image sizes), which need no model."""
    seed = options.get("seed")
    valid_seed = seed if isinstance(seed, int) and seed >= 0 else 0  # random seeds: any
    try:
        request = VideoRequest(prompt=prompt, **options)
    except TypeError as exc:
        raise InvalidArgument(str(exc)) from None
    build_vid_params(request, valid_seed, [])


def write_video_outputs(
    frames: list[Image.Image],
    output_dir: str | os.PathLike[str],
    output: VideoOutput,
    on_saved: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write ``video.{webp,gif}`` then ``frame_0000.png``... atomically into ``output_dir``;
    return the names in that order (the animation first: what a client shows)."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    total = len(frames) + 1
    name = f"video.{output.format}"
    save_animation(frames, directory / name, fps=output.fps, quality=output.quality)
    names = [name]
    if on_saved is not None:
        on_saved(1, total)
    for i, frame in enumerate(frames):
        name = f"frame_{i:04d}.png"
        atomic_write(directory / name, [png_bytes(frame)])
        names.append(name)
        if on_saved is not None:
            on_saved(i + 2, total)
    return names
