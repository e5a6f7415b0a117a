"""Request bodies of the native dialect (seed 004), validated before anything is queued.

Each request converts itself into the one job spec with ``to_spec()``; model and file names
are resolved by the service (inside the models directory only), images are decoded and checked
by ``sdcpp.server.imaging``.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args, get_type_hints

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from ...jobspec import LIMITS, ImageSpec, LoraRef, UpscaleSpec, VideoSpec
from ...jobspec.image import generation_options
from ...options import CacheOptions, SampleMethod, Scheduler

# Seed 004 lists "dpmpp2m"-style spellings; the engine's are "dpm++2m". Accept both.
_SAMPLER_ALIASES = {"dpmpp2s_a": "dpm++2s_a", "dpmpp2m": "dpm++2m", "dpmpp2mv2": "dpm++2mv2"}

OutputFormat = Literal["png", "jpeg", "webp"]
_IMAGE_OR_URL = "base64, data: URL, or an http(s) URL (fetched when image download is enabled)"


def limited(name: str, default: Any = None, **kwargs: Any) -> Any:
    """A field bounded by the one limits table (``sdcpp.jobspec.limits``). Side steps are
    not checked here: the spec refuses them naming the nearest valid sizes."""
    limit = LIMITS[name]
    return Field(default, ge=limit.low, le=limit.high, **kwargs)


def also(*names: str) -> AliasChoices:
    """Accept a field under our name and the seeds' other spellings of it."""
    return AliasChoices(*names)


def check_sampler(value: str | None) -> str | None:
    if value is None or value in ("", "default"):
        return None
    name = _SAMPLER_ALIASES.get(value.lower(), value)
    return SampleMethod(name).value  # ValueError -> 422 with the allowed names


def check_scheduler(value: str | None) -> str | None:
    if value is None or value in ("", "default"):
        return None
    return Scheduler(value).value


class EngineOptions(BaseModel):
    """Engine (context) options any generation request may set; seed 004's names."""

    n_threads: int | None = limited("n_threads")
    offload_params_to_cpu: bool | None = None
    clip_on_cpu: bool | None = None
    vae_on_cpu: bool | None = None
    diffusion_flash_attn: bool | None = None
    diffusion_conv_direct: bool | None = None
    vae_conv_direct: bool | None = None

    def context_fields(self) -> dict[str, Any]:
        """StableDiffusion constructor options set by this request."""
        fields = {
            "n_threads": self.n_threads,
            "offload_params_to_cpu": self.offload_params_to_cpu,
            "keep_clip_on_cpu": self.clip_on_cpu,
            "keep_vae_on_cpu": self.vae_on_cpu,
            "diffusion_flash_attn": self.diffusion_flash_attn,
            "diffusion_conv_direct": self.diffusion_conv_direct,
            "vae_conv_direct": self.vae_conv_direct,
        }
        return {k: v for k, v in fields.items() if v is not None}


class SamplingChoice(BaseModel):
    """Sampler and scheduler by the engine's names (seed 004's spellings accepted)."""

    sampling_method: str | None = None
    scheduler: str | None = None

    @field_validator("sampling_method")
    @classmethod
    def _sampler(cls, value: str | None) -> str | None:
        return check_sampler(value)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        return check_scheduler(value)


class LoraItem(BaseModel):
    """A LoRA from the LoRA dir (default ``{models}/loras``) by file stem, with its weight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=1024)
    weight: float = limited("lora_weight", 1.0)


class CacheItem(BaseModel):
    """Step caching by mode with the engine's own settings (``sdcpp.CacheOptions``)."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(..., min_length=1, max_length=32, description="ucache, easycache, ...")
    settings: dict[str, float | int | bool] = Field(
        default_factory=dict, max_length=32, description="CacheParams fields, e.g. reuse_threshold"
    )

    def to_options(self) -> CacheOptions:
        return CacheOptions(mode=self.mode, settings=dict(self.settings))


# Spec options the image-input requests declare themselves (text2img has no use for them).
_IMAGE_INPUT_OPTIONS = frozenset({"strength", "control_strength"})


def spec_request_fields(spec_type: type[ImageSpec] = ImageSpec) -> dict[str, Any]:
    """Pydantic field definitions for the spec's plain numeric and boolean generation options
    (``generation_options``), by the spec's own names and bounded by their limits row: a new
    spec option is a native request field without a line here. Strings are left out on
    purpose: they name files or choices that need their own resolution or check."""
    hints = get_type_hints(spec_type)
    out: dict[str, Any] = {}
    for name in generation_options(spec_type):
        kinds = set(get_args(hints[name]) or (hints[name],)) - {types.NoneType}
        if name in _IMAGE_INPUT_OPTIONS or not kinds <= {int, float, bool}:
            continue
        if kinds == {bool}:
            out[name] = (bool | None, None)
        elif name not in LIMITS:
            raise LookupError(f"{spec_type.__name__}.{name} needs a row in jobspec.limits.LIMITS")
        else:
            out[name] = (hints[name] | None, limited(name))
    return out


if TYPE_CHECKING:
    _SpecOptions = BaseModel
else:
    _SpecOptions = create_model("_SpecOptions", **spec_request_fields())


class GenerateBase(EngineOptions, SamplingChoice, _SpecOptions):
    """Fields shared by every generation endpoint (seed 004's text2img body and more)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, populate_by_name=True)

    model_name: str | None = Field(
        None,
        description="model id, relative path or name",
        validation_alias=also("model_name", "model"),
    )
    prompt: str = Field(..., min_length=1, max_length=20000)
    negative_prompt: str = Field("", max_length=20000)
    seed: int | Literal["random"] = "random"
    batch_count: int = limited("batch_count", 1, validation_alias=also("batch_count", "batch_size"))
    cache: str | CacheItem | None = Field(
        None,
        description="step caching: a preset (off, balanced, fast), a mode name (ucache, "
        "easycache, dbcache, taylorseer, cache-dit, spectrum) or {mode, settings}",
    )
    vae_path: str | None = Field(None, validation_alias=also("vae_path", "vae_model"))
    clip_l_path: str | None = None
    clip_g_path: str | None = None
    t5xxl_path: str | None = None
    llm_path: str | None = None
    taesd_path: str | None = None
    embedding_dir: str | None = None
    lora_model_dir: str | None = None
    loras: list[LoraItem] = Field(default_factory=list, max_length=32)
    output_format: OutputFormat = "png"
    output_quality: int = limited("output_quality", 90)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < -1:
            raise ValueError("seed must be -1 (random), 'random' or a non-negative integer")
        return value

    def to_spec(self, **images: Any) -> ImageSpec:
        """This request as the one job spec; ``images`` are the stored input paths
        (``init_image=...``) and the request's own image/ControlNet fields."""
        files = {
            slot: getattr(self, f) for f, slot in {**self.FILE_FIELDS, **self.DIR_FIELDS}.items()
        }
        # every spec option this request has by the spec's name (``spec_request_fields``)
        options = {
            name: value
            for name in generation_options(ImageSpec)
            if name in type(self).model_fields and (value := getattr(self, name)) is not None
        }
        options.update({k: v for k, v in files.items() if v}, **self.context_fields(), **images)
        return ImageSpec(
            model=self.model_name,
            prompt=self.prompt,
            sampler=self.sampling_method,
            seed=None if self.seed == "random" else self.seed,
            **options,
            loras=tuple(LoraRef(name=lora.name, weight=lora.weight) for lora in self.loras),
            cache=self.cache.to_options() if isinstance(self.cache, CacheItem) else self.cache,
            output_format=self.output_format,
            output_quality=self.output_quality,
        )

    # request field -> worker param holding a file inside the models dir
    FILE_FIELDS: ClassVar[dict[str, str]] = {
        "vae_path": "vae",
        "clip_l_path": "clip_l",
        "clip_g_path": "clip_g",
        "t5xxl_path": "t5xxl",
        "llm_path": "llm",
        "taesd_path": "taesd",
    }
    DIR_FIELDS: ClassVar[dict[str, str]] = {
        "embedding_dir": "embedding_dir",
        "lora_model_dir": "lora_dir",
    }


class Text2ImgRequest(GenerateBase):
    pass


class Img2ImgRequest(GenerateBase):
    init_image: str = Field(
        ...,
        description=f"PNG, JPEG or WebP: {_IMAGE_OR_URL}",
        validation_alias=also("init_image", "source_image"),
    )
    strength: float = limited("strength", 0.75)


class InpaintingRequest(Img2ImgRequest):
    mask_image: str = Field(..., description=f"white = repaint; {_IMAGE_OR_URL}")
    strength: float = limited("strength", 1.0)


class ControlNetRequest(GenerateBase):
    control_image: str = Field(..., description=_IMAGE_OR_URL)
    control_net: str | None = Field(
        None,
        description="ControlNet model (models dir)",
        validation_alias=also("control_net", "control_net_model"),
    )
    control_strength: float = limited("control_strength", 0.9)
    canny: bool = Field(False, description="run canny edge detection on the control image")
    init_image: str | None = Field(None, validation_alias=also("init_image", "source_image"))
    strength: float | None = limited("strength")


class UpscaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    image: str = Field(..., description=_IMAGE_OR_URL)
    upscaler: str | None = Field(
        None,
        description="ESRGAN model (models dir); default: first",
        validation_alias=also("upscaler", "esrgan_model"),
    )
    factor: int | None = Field(None, ge=1, le=8, validation_alias=also("factor", "upscale_factor"))
    output_format: OutputFormat = "png"
    output_quality: int = limited("output_quality", 90)

    def to_spec(self, image: str) -> UpscaleSpec:
        """This request as the job spec; ``image``: the stored input's path."""
        return UpscaleSpec(
            image=image,
            upscaler=self.upscaler,
            factor=self.factor,
            output_format=self.output_format,
            output_quality=self.output_quality,
        )


class CancelRequest(BaseModel):
    job_id: str = Field(..., min_length=1, max_length=64)


class VideoGenerateRequest(EngineOptions, SamplingChoice):
    """Wan 2.x video (seed 002): text-to-video, or image-to-video with ``init_image``, or
    first-last-frame with ``end_image`` too. Fields left out take the model's recommended
    settings (from its detected architecture), then the engine's defaults."""

    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(None, description="video model id, relative path or name")
    prompt: str = Field(..., min_length=1, max_length=20000)
    negative_prompt: str = Field("", max_length=20000)
    # The Wan VAE downsamples by 8 and the transformer patches by 2: sides are multiples of 16.
    width: int | None = Field(None, ge=16, le=4096, multiple_of=16)
    height: int | None = Field(None, ge=16, le=4096, multiple_of=16)
    video_frames: int | None = Field(None, ge=1, le=1024, description="Wan wants 4n+1")
    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    flow_shift: float | None = Field(None, ge=0.0, le=100.0)
    high_noise_steps: int | None = Field(None, ge=1, le=150, description="Wan 2.2 A14B")
    high_noise_cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    moe_boundary: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | Literal["random"] = "random"
    init_image: str | None = Field(None, description="first frame; base64 or data: URL")
    end_image: str | None = Field(None, description="last frame (FLF2V); needs init_image")
    fps: float = Field(16.0, gt=0.0, le=120.0)
    output_format: Literal["webp", "gif"] = "webp"
    output_quality: int | None = Field(None, ge=1, le=100, description="WebP; none: lossless")
    vae_path: str | None = None
    t5xxl_path: str | None = None
    clip_vision_path: str | None = None
    high_noise_diffusion_model_path: str | None = None
    lora_model_dir: str | None = None

    @model_validator(mode="after")
    def _frames(self) -> VideoGenerateRequest:
        if self.end_image is not None and self.init_image is None:
            raise ValueError("end_image (first-last-frame video) needs an init_image too")
        return self

    def video_fields(self) -> dict[str, Any]:
        """The library's VideoRequest fields set by this request."""
        fields = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": self.width,
            "height": self.height,
            "video_frames": self.video_frames,
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "sample_method": self.sampling_method,
            "scheduler": self.scheduler,
            "flow_shift": self.flow_shift,
            "high_noise_steps": self.high_noise_steps,
            "high_noise_cfg_scale": self.high_noise_cfg_scale,
            "moe_boundary": self.moe_boundary,
            "seed": None if self.seed == "random" else self.seed,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def to_spec(self, **images: Any) -> VideoSpec:
        """This request as the job spec; ``images``: the stored frames' paths
        (``init_image=...``, ``end_image=...``)."""
        fields = {k: v for k, v in self.video_fields().items() if k != "sample_method"}
        files = {
            slot: getattr(self, f) for f, slot in {**self.FILE_FIELDS, **self.DIR_FIELDS}.items()
        }
        return VideoSpec(
            **fields,
            **self.context_fields(),
            **{k: v for k, v in files.items() if v},
            **images,
            model=self.model_name,
            sampler=self.sampling_method,
            fps=self.fps,
            output_format=self.output_format,
            output_quality=self.output_quality,
        )

    # request field -> worker param holding a file inside the models dir; these win over the
    # companions the worker would pick from the models dir
    FILE_FIELDS: ClassVar[dict[str, str]] = {
        "vae_path": "vae",
        "t5xxl_path": "t5xxl",
        "clip_vision_path": "clip_vision",
        "high_noise_diffusion_model_path": "high_noise_diffusion_model",
    }
    DIR_FIELDS: ClassVar[dict[str, str]] = {"lora_model_dir": "lora_dir"}


class ModelIdRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model_id: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description="id, path or name",
        validation_alias=also("model_id", "model_name"),
    )


class ModelBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["load", "unload", "hash", "validate"] = Field(
        ..., validation_alias=also("action", "operation")
    )
    model_ids: list[str] = Field(
        ..., min_length=1, max_length=100, validation_alias=also("model_ids", "models")
    )
