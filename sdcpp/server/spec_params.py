"""From an ``ImageSpec`` to the worker's job parameters, planned by architecture.

The model goes through ``sdcpp.plan``: detection decides ``model`` vs ``diffusion_model``,
companions come from the models dir (the spec's explicit ones win), a missing companion is
the plan's typed error naming the file and where to put it, and the plan's recommended
defaults fill what the spec leaves out. LoRAs resolve against ``{models}/loras`` (or the
spec's ``lora_dir``) before the job is queued.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .. import cache_presets
from .._generation import cache_params as native_cache_params
from ..detect import MODEL_IDS
from ..errors import UnsupportedError
from ..jobspec import ImageSpec, LoadSpec, LoraNotFound, SpecError, VideoSpec, limits
from ..loras import lora_tags
from ..options import CacheOptions
from ..plan import plan_from_registry, raise_if_missing, raise_if_unsupported
from ..registry import ModelRegistry, ModelType
from ..registry.errors import ModelNotFoundError, no_model_message
from .imaging import store_input

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_COMPANIONS = ("vae", "clip_l", "clip_g", "t5xxl", "llm", "taesd")
_DEFAULTED = ("steps", "cfg_scale", "width", "height", "flow_shift", "guidance", "scheduler")
_LORA_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".gguf")
_VIDEO_COMPANIONS = ("vae", "t5xxl", "clip_vision", "high_noise_diffusion_model")
# Detected families that only make images: a video job for one is refused before queuing.
_IMAGE_ONLY_IDS = frozenset(i for i in MODEL_IDS if not i.startswith(("wan", "ltx")))


def model_plan(
    registry: ModelRegistry,
    spec: ImageSpec,
    default: str | None,
    fields: Mapping[str, str] | None = None,
) -> Any:
    """The context plan for the spec's model (the server default, else the first one).
    ``fields``: companion slot -> the request's field for it, so a missing companion's
    message names the field the client can set (``t5xxl_path``), not the library keyword."""
    name = spec.model or default
    if not name:
        found = registry.list(type=_IMAGE_TYPES, limit=1).items
        if not found:
            raise ModelNotFoundError(no_model_message(registry.root))
        name = found[0].id
    plan = plan_from_registry(registry, name)
    overrides = {
        slot: str(registry.resolve(registry.get(value).id))
        for slot in _COMPANIONS
        if (value := getattr(spec, slot))
    }
    plan = plan.with_overrides(overrides)
    raise_if_unsupported(plan)
    raise_if_missing(plan, fields)
    return plan


def video_plan(
    registry: ModelRegistry, spec: VideoSpec, fields: Mapping[str, str] | None = None
) -> Any:
    """The context plan of a video spec whose model and companions are resolved paths inside
    the models dir: an image-only family is refused (UnsupportedError) and a missing companion
    (Wan VAE, UMT5-XXL, CLIP vision for I2V, ...) is the plan's ModelLoadError naming each file
    and where to put it, before queuing. The worker plans the same way from ``models_dir``."""
    model = Path(str(spec.model))
    root = registry.root
    name = model.relative_to(root).as_posix() if model.is_relative_to(root) else str(model)
    plan = plan_from_registry(registry, name)
    if getattr(plan.detection, "id", None) in _IMAGE_ONLY_IDS:
        raise UnsupportedError(f"{plan.name} generates images, not video; use an image job")
    overrides = {slot: value for slot in _VIDEO_COMPANIONS if (value := getattr(spec, slot))}
    plan = plan.with_overrides(overrides)
    raise_if_unsupported(plan)
    raise_if_missing(plan, fields)
    return plan


def resolve_image(
    registry: ModelRegistry,
    spec: ImageSpec,
    plan: Any,
    inputs: Path,
    max_pixels: int,
    threads: int | None = None,
) -> tuple[ImageSpec, dict[str, Any]]:
    """``spec`` as it will run, and the engine part of its job record (``job_record``): the
    plan's files under their load keyword plus its context settings. In the resolved spec,
    names are files inside the models dir (LoRAs, ControlNet, PhotoMaker and its ID embedding,
    the LoRA/embedding dirs), images are stored into ``inputs``, the plan's recommended values
    fill what ``spec`` left out, and a step-cache preset is the options for this architecture."""
    changes: dict[str, Any] = {"model": str(plan.model_path)}
    recommended = plan.defaults
    for name in _DEFAULTED:  # the plan's defaults fill what the spec leaves out
        if getattr(spec, name) is None and (value := getattr(recommended, name, None)) is not None:
            changes[name] = str(value) if name == "scheduler" else value  # an enum member
    if spec.sampler is None and recommended.sample_method is not None:
        changes["sampler"] = str(recommended.sample_method)
    if spec.cache is not None:
        changes["cache"] = cache_for(spec.cache, plan)
    if spec.n_threads is None and threads:
        changes["n_threads"] = threads
    lora_dir = _dir(registry, spec.lora_dir, "loras")
    changes["lora_dir"] = str(lora_dir) if lora_dir is not None else None
    embedding_dir = _dir(registry, spec.embedding_dir, "embeddings")
    changes["embedding_dir"] = str(embedding_dir) if embedding_dir is not None else None
    where = lora_dir or registry.root / "loras"
    for name, weight in lora_tags(spec.prompt):
        _lora(where, name)  # a <lora:name:w> tag is checked like `loras`: 404 before queuing
        if (problem := limits.check("lora_weight", weight)) is not None:
            raise SpecError(f"<lora:{name}:...>: {problem}")
    changes["loras"] = tuple(dataclasses.replace(r, name=_lora(where, r.name)) for r in spec.loras)
    for name in ("control_net", "photo_maker"):
        if value := getattr(spec, name):
            changes[name] = str(registry.resolve(registry.get(value).id))
    if value := spec.photo_maker_id_embed:  # no model type lists it: a file by relative path
        changes["photo_maker_id_embed"] = str(registry.resolve(value))  # inside the models dir
    for name, mode in (("init_image", "RGB"), ("mask_image", "L"), ("control_image", "RGB")):
        if (value := getattr(spec, name)) is not None:
            changes[name] = _stored(value, inputs, name, mode, max_pixels)
    for name in ("ref_images", "photo_maker_images"):
        changes[name] = tuple(
            _stored(v, inputs, f"{name}_{i}", "RGB", max_pixels)
            for i, v in enumerate(getattr(spec, name))
        )
    for slot in _COMPANIONS:  # in the engine part, as the plan resolved them
        changes[slot] = None
    return dataclasses.replace(spec, **changes), {**plan.loader_kwargs(), **plan.context}


def cache_for(cache: str | CacheOptions, plan: Any) -> CacheOptions | None:
    """The engine's step-cache options for this plan's architecture: a preset or mode name
    resolved, a mode the architecture cannot use refused (InvalidArgument naming what it
    can), settings checked against the engine's own fields before anything is queued."""
    detection = getattr(plan, "detection", None)
    options = cache_presets.resolve(cache, getattr(detection, "id", None) or plan.name)
    if options is not None:
        native_cache_params(options)  # raises InvalidArgument for an unknown setting
    return options


def plan_view(plan: Any, spec: ImageSpec | None = None) -> dict[str, Any]:
    """What the job's JSON shows of the plan it ran with: the architecture, the main file and
    the keyword it went as (``model`` or ``diffusion_model``), the companions by slot, the
    context settings the architecture needs, and the recommended defaults that filled what
    ``spec`` left out."""
    applied: dict[str, Any] = {}
    if spec is not None:
        recommended = plan.defaults
        for name in (*_DEFAULTED, "sample_method"):
            asked = getattr(spec, "sampler" if name == "sample_method" else name)
            value = getattr(recommended, name, None)
            if asked is None and value is not None:
                applied[name] = value if isinstance(value, int | float) else str(value)
    return {
        "architecture": plan.name,
        "load_as": plan.load_as,
        "model": Path(plan.model_path).name if plan.model_path else None,
        "files": {slot: Path(path).name for slot, path in plan.files.items()},
        "context": {
            k: v for k, v in plan.context.items() if isinstance(v, bool | int | float | str)
        },
        "defaults": applied,
        "notes": list(plan.notes),
    }


def _dir(registry: ModelRegistry, name: str | None, default: str) -> Path | None:
    """A directory inside the models dir: the named one, else ``{models}/{default}`` when it
    exists (so LoRAs and embeddings work without any setting)."""
    if name is None:
        path = registry.root / default
        return path if path.is_dir() else None
    path = Path(registry.resolve(name))
    if not path.is_dir():
        raise SpecError(f"not a directory in the models dir: {name}")
    return path


def _lora(folder: Path, name: str) -> str:
    if not name.strip() or "\x00" in name:
        raise LoraNotFound(name, str(folder))
    base = folder.resolve()
    for candidate in [folder / name, *(folder / f"{name}{ext}" for ext in _LORA_EXTENSIONS)]:
        resolved = candidate.resolve()
        if resolved.is_file() and resolved.is_relative_to(base):
            return str(resolved)
    raise LoraNotFound(name, str(folder))


def stored_image(
    value: bytes | str, inputs: Path, name: str, max_pixels: int
) -> tuple[str, tuple[int, int]]:
    """An input image's stored path and its size (bytes are stored into ``inputs``)."""
    path = _stored(value, inputs, name, "RGB", max_pixels)
    return path, image_size(path)


def image_size(path: str) -> tuple[int, int]:
    """The size of an image the server stored."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        raise SpecError(f"{Path(path).name}: not a readable image") from None


def _stored(value: bytes | str, inputs: Path, name: str, mode: str, max_pixels: int) -> str:
    if isinstance(value, str):
        return value  # already stored by the server
    try:
        with Image.open(io.BytesIO(value)) as image:
            if image.width * image.height > max_pixels:
                raise SpecError(f"{name}: {image.width}x{image.height} is too large")
            image.load()
            return str(store_input(image, inputs, name, mode=mode))
    except (OSError, UnidentifiedImageError):
        raise SpecError(f"{name}: not a PNG, JPEG or WebP image") from None


def load_params(
    registry: ModelRegistry, spec: LoadSpec | str, threads: int | None
) -> dict[str, Any]:
    """The context keywords an explicit model load uses: the same plan, companions and default
    LoRA/embedding dirs as a job for that model, so the job finds the loaded context (one
    cache key) instead of loading a second copy. ``spec``: a ``LoadSpec`` or a model name."""
    spec = LoadSpec(model=spec) if isinstance(spec, str) else spec
    spec.validate()
    # a load request names no companions: a missing one is only "put it in models/..."
    plan = model_plan(registry, ImageSpec(prompt="", model=spec.model), None, fields={})
    params: dict[str, Any] = {**plan.loader_kwargs(), **plan.context, **spec.context_options()}
    if threads and "n_threads" not in params:
        params["n_threads"] = threads
    for key, folder in (("lora_dir", "loras"), ("embedding_dir", "embeddings")):
        if (path := _dir(registry, None, folder)) is not None:
            params[key] = str(path)
    return params
