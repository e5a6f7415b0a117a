"""Image generation requests: validated in Python, then turned into native parameters.

Everything the engine would reject with an assert (which ends the process) is rejected here
with ``InvalidArgument`` instead: sizes, step counts, image shapes, strengths, file paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _native
from ._files import check_model_file
from .errors import InvalidArgument
from .images import ImageLike, to_array
from .options import (
    CacheMode,
    CacheOptions,
    HiresFix,
    HiresUpscaler,
    Lora,
    SampleMethod,
    Scheduler,
    SkipLayerGuidance,
    VaeTiling,
)

MAX_SIDE = 16384
MAX_STEPS = 10000
MAX_BATCH = 64

_CACHE_MODES = {
    CacheMode.DISABLED: "DISABLED",
    CacheMode.EASYCACHE: "EASYCACHE",
    CacheMode.UCACHE: "UCACHE",
    CacheMode.DBCACHE: "DBCACHE",
    CacheMode.TAYLORSEER: "TAYLORSEER",
    CacheMode.CACHE_DIT: "CACHE_DIT",
    CacheMode.SPECTRUM: "SPECTRUM",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """Everything ``StableDiffusion.generate()`` accepts. ``None`` = the engine's default."""

    prompt: str
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    image_cfg_scale: float | None = None
    guidance: float | None = None  # distilled guidance (Flux)
    sample_method: SampleMethod | str | None = None
    scheduler: Scheduler | str | None = None
    eta: float | None = None
    seed: int | None = None  # None or negative: a random seed (reported in the result)
    batch_count: int = 1
    clip_skip: int | None = None
    flow_shift: float | None = None
    shifted_timestep: int | None = None
    custom_sigmas: Sequence[float] | None = None
    skip_layer_guidance: SkipLayerGuidance | None = None
    init_image: ImageLike | None = None
    strength: float | None = None
    mask_image: ImageLike | None = None
    control_image: ImageLike | None = None
    control_strength: float | None = None
    ref_images: Sequence[ImageLike] = ()
    auto_resize_ref_image: bool | None = None
    increase_ref_index: bool | None = None
    loras: Sequence[Lora] = ()
    vae_tiling: VaeTiling | None = None
    hires: HiresFix | None = None
    cache: CacheOptions | None = None
    photo_maker_images: Sequence[ImageLike] = ()
    photo_maker_id_embed: str | None = None
    photo_maker_style_strength: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # reserved for dialect passthrough


def check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}, got {value}")


def check_int(name: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}, got {value}")


def native_enum(value: Any, py_enum: type, native_type: Any, name: str) -> Any:
    """The native enum value for ``value``, a member or name of the Python enum ``py_enum``."""
    try:
        member = py_enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in py_enum)  # type: ignore[attr-defined]
        raise InvalidArgument(f"{name}: unknown value {value!r} (choose from {choices})") from None
    return native_type.from_library_name(member.value)


def build_img_params(req: GenerationRequest, seed: int) -> Any:
    """Validate ``req`` and return a native ImgGenParams for it."""
    p = _native.ImgGenParams()
    if not isinstance(req.prompt, str) or not isinstance(req.negative_prompt, str):
        raise InvalidArgument("prompt and negative_prompt must be strings")
    p.prompt, p.negative_prompt = req.prompt, req.negative_prompt

    init = to_array(req.init_image, name="init_image") if req.init_image is not None else None
    width = req.width if req.width is not None else (init.shape[1] if init is not None else None)
    height = req.height if req.height is not None else (init.shape[0] if init is not None else None)
    for name, side in (("width", width), ("height", height)):
        if side is None:
            continue
        check_int(name, side, 8, MAX_SIDE)
        if side % 8:
            raise InvalidArgument(f"{name} must be a multiple of 8, got {side}")
        setattr(p, name, side)
    width, height = p.width, p.height

    def sized(image: ImageLike, name: str, channels: int = 3) -> Any:
        array = to_array(image, channels=channels, name=name)
        if array.shape[:2] != (height, width):
            raise InvalidArgument(
                f"{name} is {array.shape[1]}x{array.shape[0]}, the output is {width}x{height}"
            )
        return array

    if init is not None:
        p.init_image = sized(init, "init_image")
    if req.mask_image is not None:
        if init is None:
            raise InvalidArgument("mask_image needs an init_image (inpainting)")
        p.mask_image = sized(req.mask_image, "mask_image", channels=1)
    if req.control_image is not None:
        p.control_image = sized(req.control_image, "control_image")
    if req.ref_images:
        p.ref_images = [to_array(img, name="ref_images") for img in req.ref_images]
    if req.photo_maker_images:
        p.pm_id_images = [
            to_array(img, name="photo_maker_images") for img in req.photo_maker_images
        ]
    if req.photo_maker_id_embed:
        p.pm_id_embed_path = str(check_model_file(req.photo_maker_id_embed, "photo_maker_id_embed"))
    check_range("photo_maker_style_strength", req.photo_maker_style_strength, 0, 100)
    if req.photo_maker_style_strength is not None:
        p.pm_style_strength = req.photo_maker_style_strength

    check_range("strength", req.strength, 0.0, 1.0)
    check_range("control_strength", req.control_strength, 0.0, 10.0)
    check_int("batch_count", req.batch_count, 1, MAX_BATCH)
    check_int("clip_skip", req.clip_skip, -1, 12)
    check_int("seed", seed, 0, 2**63 - 1)
    for name in (
        "strength",
        "control_strength",
        "clip_skip",
        "auto_resize_ref_image",
        "increase_ref_index",
    ):
        value = getattr(req, name)
        if value is not None:
            setattr(p, name, value)
    p.batch_count = req.batch_count
    p.seed = seed
    p.loras = [native_lora(lora) for lora in req.loras]

    s = p.sample_params
    check_int("steps", req.steps, 1, MAX_STEPS)
    check_range("cfg_scale", req.cfg_scale, 0.0, 100.0)
    check_range("image_cfg_scale", req.image_cfg_scale, 0.0, 100.0)
    check_range("guidance", req.guidance, 0.0, 100.0)
    check_range("eta", req.eta, 0.0, 10.0)
    check_range("flow_shift", req.flow_shift, 0.0, 100.0)
    check_int("shifted_timestep", req.shifted_timestep, 0, 1000)
    for src, dst in (
        ("steps", "sample_steps"),
        ("cfg_scale", "txt_cfg"),
        ("image_cfg_scale", "img_cfg"),
        ("guidance", "distilled_guidance"),
        ("eta", "eta"),
        ("flow_shift", "flow_shift"),
        ("shifted_timestep", "shifted_timestep"),
    ):
        value = getattr(req, src)
        if value is not None:
            setattr(s, dst, value)
    if req.sample_method is not None:
        s.sample_method = native_enum(
            req.sample_method, SampleMethod, _native.SampleMethod, "sample_method"
        )
    if req.scheduler is not None:
        s.scheduler = native_enum(req.scheduler, Scheduler, _native.Scheduler, "scheduler")
    if req.custom_sigmas:
        sigmas = [float(x) for x in req.custom_sigmas]
        if not all(math.isfinite(x) and x >= 0 for x in sigmas):
            raise InvalidArgument("custom_sigmas must be finite and non-negative")
        s.custom_sigmas = sigmas
    if req.skip_layer_guidance is not None:
        slg = req.skip_layer_guidance
        s.slg_layers = [int(x) for x in slg.layers]
        for src in ("layer_start", "layer_end", "scale"):
            value = getattr(slg, src)
            check_range(f"skip_layer_guidance.{src}", value, 0.0, 100.0)
            if value is not None:
                setattr(s, f"slg_{src}", value)
    p.sample_params = s

    if req.vae_tiling is not None:
        t = p.vae_tiling_params
        t.enabled = req.vae_tiling.enabled
        for name in ("tile_size_x", "tile_size_y", "target_overlap", "rel_size_x", "rel_size_y"):
            value = getattr(req.vae_tiling, name)
            if value is not None:
                setattr(t, name, value)
        p.vae_tiling_params = t
    if req.hires is not None:
        p.hires = _hires(req.hires)
    if req.cache is not None:
        p.cache = cache_params(req.cache)
    return p


def native_lora(lora: Lora) -> Any:
    if not isinstance(lora, Lora):
        raise InvalidArgument("loras must be sdcpp.Lora objects")
    check_range("lora multiplier", lora.multiplier, -100.0, 100.0)
    path = str(check_model_file(lora.path, "lora"))
    return _native.Lora(path, float(lora.multiplier), bool(lora.is_high_noise))


def _hires(hires: HiresFix) -> Any:
    h = _native.HiresParams()
    h.enabled = True
    h.upscaler = native_enum(hires.upscaler, HiresUpscaler, _native.HiresUpscaler, "hires.upscaler")
    if HiresUpscaler(hires.upscaler) is HiresUpscaler.MODEL:
        if not hires.model_path:
            raise InvalidArgument("hires upscaler 'Model' needs hires.model_path")
        h.model_path = str(check_model_file(hires.model_path, "hires upscaler"))
    check_range("hires.scale", hires.scale, 1.0, 8.0)
    check_range("hires.denoising_strength", hires.denoising_strength, 0.01, 1.0)
    check_int("hires.steps", hires.steps, 1, MAX_STEPS)
    for name in ("target_width", "target_height"):
        value = getattr(hires, name)
        check_int(f"hires.{name}", value, 8, MAX_SIDE)
        if value is not None and value % 8:
            raise InvalidArgument(f"hires.{name} must be a multiple of 8")
    check_int("hires.upscale_tile_size", hires.upscale_tile_size, 16, 4096)
    for name in (
        "scale",
        "target_width",
        "target_height",
        "steps",
        "denoising_strength",
        "upscale_tile_size",
    ):
        value = getattr(hires, name)
        if value is not None:
            setattr(h, name, value)
    return h


def cache_params(cache: CacheOptions) -> Any:
    """The native CacheParams for ``cache``; InvalidArgument for an unknown mode or setting."""
    c = _native.CacheParams()
    try:
        mode = CacheMode(cache.mode)
    except ValueError:
        raise InvalidArgument(f"cache.mode: unknown value {cache.mode!r}") from None
    c.mode = getattr(_native.CacheMode, _CACHE_MODES[mode])
    for name, value in cache.settings.items():
        if name == "mode" or not hasattr(c, name):
            raise InvalidArgument(f"cache: unknown setting {name!r}")
        try:
            setattr(c, name, value)
        except TypeError as exc:
            raise InvalidArgument(f"cache.{name}: {exc}") from exc
    return c
