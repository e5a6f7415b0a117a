"""AUTOMATIC1111 ``/sdapi/v1`` request bodies (field names and defaults as A1111's API models).

Unknown fields are ignored, as A1111 does (its models are generated from the processing
classes and tolerate extras). Where A1111 has a fixed default that only suits SD 1.x
(``steps`` 50, ``cfg_scale`` 7, 512x512), a field left out here means "the plan's recommended
value for this model" instead; a client that sends the field gets exactly what it asked for.
Each generation request converts itself into the one job spec with ``to_spec()``.

sdcpp's extras: ``cache`` (step caching: a preset ``off``/``balanced``/``fast``, a mode name
such as ``ucache``, or ``{"mode", "settings"}``) as a top-level field, for clients that build
the body themselves; or ``sdcpp_cache`` with the same values in ``override_settings`` (that
request) or ``POST /options`` (the caller's default), for clients such as ``webuiapi`` that
send only A1111's own fields plus ``override_settings``. The top-level field wins.
``image_cfg_scale`` reaches the engine's image guidance, which only instruct-pix2pix style
edit models use (as in A1111); other models ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ....errors import InvalidArgument
from ....jobspec import ImageSpec
from ....options import CacheOptions, HiresFix
from ...schemas.native import CacheItem
from . import samplers

MAX_ITERATIONS = 100  # n_iter: sequential jobs of batch_size images each


class Base(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Txt2ImgRequest(Base):
    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str | None = None
    sampler_index: str | None = None  # deprecated spelling of sampler_name
    scheduler: str | None = None
    batch_size: int = Field(1, ge=1, le=16)
    n_iter: int = Field(1, ge=1, le=MAX_ITERATIONS)
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = None
    clip_skip: int | None = None  # SD.Next's spelling of CLIP_stop_at_last_layers
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    script_name: str | None = None
    script_args: list[Any] = []
    alwayson_scripts: dict[str, Any] = {}
    send_images: bool = True
    save_images: bool = False
    force_task_id: str | None = None
    infotext: str | None = None
    # hires fix (txt2img only)
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    firstphase_width: int = 0
    firstphase_height: int = 0
    # sdcpp's extra (module docstring)
    cache: str | CacheItem | None = None

    def sampler(self) -> tuple[Any, Any]:
        return samplers.parse_sampler(self.sampler_name or self.sampler_index, self.scheduler)

    def hires(self, upscaler: str, model_path: str | None) -> HiresFix | None:
        """The spec's hires pass; ``upscaler`` already mapped (a latent mode, "Lanczos", or
        "Model" with ``model_path``)."""
        if not self.enable_hr:
            return None
        return HiresFix(
            upscaler=upscaler,
            model_path=model_path,
            scale=None if self.hr_resize_x or self.hr_resize_y else self.hr_scale,
            target_width=self.hr_resize_x or None,
            target_height=self.hr_resize_y or None,
            steps=self.hr_second_pass_steps or None,
            denoising_strength=0.7 if self.denoising_strength is None else self.denoising_strength,
        )


class Img2ImgRequest(Txt2ImgRequest):
    init_images: list[str] | None = None
    resize_mode: int = Field(0, ge=0, le=3)
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int | None = None
    mask_round: bool = True
    inpainting_fill: int = Field(0, ge=0, le=3)
    inpaint_full_res: bool | int = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    initial_noise_multiplier: float | None = None
    include_init_images: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """What a request runs with beyond its own fields: ``override_settings`` over the caller's
    ``/options`` (already resolved to sdcpp names)."""

    model: str | None = None  # a registry id
    vae: str | None = None
    clip_skip: int | None = None
    output_format: str = "png"
    output_quality: int = 90
    cache: str | CacheOptions | None = None
    extra: dict[str, str] = field(default_factory=dict)


def cache_option(value: Any) -> str | CacheOptions | None:
    """The ``sdcpp_cache`` option as the spec takes it (InvalidArgument for another type);
    an empty value is no choice."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return CacheItem.model_validate(value).to_options()
    raise InvalidArgument('sdcpp_cache: a preset or mode name, or {"mode", "settings"}')


def to_spec(
    req: Txt2ImgRequest,
    settings: Settings,
    *,
    seed: int,
    hires: HiresFix | None = None,
    init_image: bytes | None = None,
    mask_image: bytes | None = None,
    batch_count: int | None = None,
) -> ImageSpec:
    """One job of ``req`` (one of its ``n_iter`` batches, or with several init images one
    image of it): ``seed`` is the job's first, ``batch_count`` its image count (default
    ``batch_size``)."""
    sampler, scheduler = req.sampler()
    cache = req.cache.to_options() if isinstance(req.cache, CacheItem) else req.cache
    strength = None
    if init_image is not None:
        strength = 0.75 if req.denoising_strength is None else req.denoising_strength
    return ImageSpec(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        model=settings.model,
        width=req.width,
        height=req.height,
        steps=req.steps,
        cfg_scale=req.cfg_scale,
        image_cfg_scale=getattr(req, "image_cfg_scale", None),
        seed=seed,
        sampler=sampler.value if sampler is not None else None,
        scheduler=scheduler.value if scheduler is not None else None,
        batch_count=req.batch_size if batch_count is None else batch_count,
        # 1 is A1111's "no skip": the model's own default then (SD 2.x skips one by design)
        clip_skip=req.clip_skip if req.clip_skip and req.clip_skip > 1 else settings.clip_skip,
        eta=req.eta,
        init_image=init_image,
        mask_image=mask_image,
        strength=strength,
        hires=hires,
        cache=settings.cache if cache is None else cache,
        vae=settings.vae,
        output_format=settings.output_format,  # type: ignore[arg-type]
        output_quality=settings.output_quality,
        extra={"dialect": "a1111", **settings.extra},
    )


class FileData(Base):
    data: str
    name: str = ""


class ExtrasRequest(Base):
    resize_mode: int = Field(0, ge=0, le=1)
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, ge=0, le=1)
    codeformer_visibility: float = Field(0.0, ge=0, le=1)
    codeformer_weight: float = Field(0.0, ge=0, le=1)
    upscaling_resize: float = Field(2.0, gt=0, le=8)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0, le=1)
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasRequest):
    image: str = ""


class ExtrasBatchImagesRequest(ExtrasRequest):
    imageList: list[FileData]


class PNGInfoRequest(Base):
    image: str
