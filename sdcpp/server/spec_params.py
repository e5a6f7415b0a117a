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
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .. import cache_presets
from .._generation import cache_params as native_cache_params
from ..jobspec import ImageSpec, LoraNotFound, SpecError, limits
from ..loras import lora_tags
from ..options import CacheOptions
from ..plan import plan_from_registry, raise_if_missing, raise_if_unsupported
from ..registry import ModelRegistry, ModelType
from ..registry.errors import ModelNotFoundError, no_model_message
from .imaging import store_input

_IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
_COMPANIONS = ("vae", "clip_l", "clip_g", "t5xxl", "llm", "taesd")
_CONTEXT = (
    "n_threads",
    "offload_params_to_cpu",
    "keep_clip_on_cpu",
    "keep_vae_on_cpu",
    "diffusion_flash_attn",
    "diffusion_conv_direct",
    "vae_conv_direct",
)
# spec field -> library GenerationRequest field (same name when absent)
_GENERATION = {
    "negative_prompt": None, "width": None, "height": None, "steps": None, "cfg_scale": None,
    "image_cfg_scale": None, "guidance": None, "sampler": "sample_method", "scheduler": None,
    "batch_count": None, "clip_skip": None, "eta": None, "flow_shift": None, "strength": None,
    "control_strength": None, "photo_maker_id_embed": None, "photo_maker_style_strength": None,
}  # fmt: skip
_STRUCTURED = ("cache", "hires", "vae_tiling", "skip_layer_guidance")
_DEFAULTED = ("steps", "cfg_scale", "width", "height", "flow_shift", "guidance", "scheduler")
_LORA_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".gguf")


def model_plan(registry: ModelRegistry, spec: ImageSpec, default: str | None) -> Any:
    """The context plan for the spec's model (the server default, else the first one)."""
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
    raise_if_missing(plan)
    return plan


def worker_params(
    registry: ModelRegistry, spec: ImageSpec, plan: Any, inputs: Path, max_pixels: int
) -> dict[str, Any]:
    """The worker's ``run`` params for ``spec`` (images stored into ``inputs``)."""
    params: dict[str, Any] = {"prompt": spec.prompt, **plan.loader_kwargs(), **plan.context}
    for name in _CONTEXT:
        if (value := getattr(spec, name)) is not None:
            params[name] = value
    for name, target in _GENERATION.items():
        if (value := getattr(spec, name)) is not None:
            params[target or name] = value
    recommended = plan.defaults
    for name in _DEFAULTED:  # the plan's defaults fill what the spec leaves out
        if params.get(name) is None and getattr(recommended, name, None) is not None:
            params[name] = getattr(recommended, name)
    if params.get("sample_method") is None and recommended.sample_method is not None:
        params["sample_method"] = str(recommended.sample_method)
    if params.get("scheduler") is not None:
        params["scheduler"] = str(params["scheduler"])  # the plan's is an enum member
    if spec.seed is not None and spec.seed >= 0:
        params["seed"] = spec.seed
    for name in _STRUCTURED:
        if (value := getattr(spec, name)) is not None and name == "cache":
            value = cache_for(value, plan)
        if value is not None:
            params[name] = dataclasses.asdict(value)  # stored as JSON; the worker rebuilds it
    lora_dir = _dir(registry, spec.lora_dir, "loras")
    embedding_dir = _dir(registry, spec.embedding_dir, "embeddings")
    if lora_dir is not None:
        params["lora_dir"] = str(lora_dir)
    if embedding_dir is not None:
        params["embedding_dir"] = str(embedding_dir)
    where = lora_dir or registry.root / "loras"
    for name, weight in lora_tags(spec.prompt):
        _lora(where, name)  # a <lora:name:w> tag is checked like `loras`: 404 before queuing
        if (problem := limits.check("lora_weight", weight)) is not None:
            raise SpecError(f"<lora:{name}:...>: {problem}")
    if spec.loras:
        params["loras"] = [
            {"path": _lora(where, r.name), "multiplier": r.weight, "is_high_noise": r.is_high_noise}
            for r in spec.loras
        ]
    if spec.control_net:
        params["control_net"] = str(registry.resolve(registry.get(spec.control_net).id))
    if spec.photo_maker:
        params["photo_maker"] = str(registry.resolve(registry.get(spec.photo_maker).id))
    for name, mode in (("init_image", "RGB"), ("mask_image", "L"), ("control_image", "RGB")):
        if (value := getattr(spec, name)) is not None:
            params[f"{name}_path"] = _stored(value, inputs, name, mode, max_pixels)
    for name in ("ref_images", "photo_maker_images"):
        if values := getattr(spec, name):
            key = "ref_image_paths" if name == "ref_images" else "photo_maker_image_paths"
            params[key] = [
                _stored(v, inputs, f"{name}_{i}", "RGB", max_pixels) for i, v in enumerate(values)
            ]
    params["canny"] = spec.canny
    params["preview"] = spec.preview
    params["output_format"], params["output_quality"] = spec.output_format, spec.output_quality
    return params


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


def load_params(registry: ModelRegistry, name: str, threads: int | None) -> dict[str, Any]:
    """The context keywords an explicit model load uses: the same plan, companions and default
    LoRA/embedding dirs as a job for that model, so the job finds the loaded context (one
    cache key) instead of loading a second copy."""
    plan = model_plan(registry, ImageSpec(prompt="", model=name), None)
    params: dict[str, Any] = {**plan.loader_kwargs(), **plan.context}
    if threads:
        params["n_threads"] = threads
    for key, folder in (("lora_dir", "loras"), ("embedding_dir", "embeddings")):
        if (path := _dir(registry, None, folder)) is not None:
            params[key] = str(path)
    return params
