"""The image job spec: one typed description of a text2img/img2img/inpaint/controlnet job.

Every dialect converts its request into an ``ImageSpec`` and hands it to
``GenerationService.submit_spec``; the spec is validated against ``limits.LIMITS`` there,
stored (``codec.encode``) and turned into the worker's parameters. ``None`` always means
"the plan's recommended default, else the engine's".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from ..options import CacheOptions, HiresFix, SkipLayerGuidance, VaeTiling
from . import limits
from .context import CONTEXT_FIELDS, EngineContext
from .errors import SpecError

OutputFormat = Literal["png", "jpeg", "webp"]
# An input image: raw file bytes (PNG/JPEG/WebP), or a path the server already stored.
ImageInput = bytes | str
# Field metadata key: the library ``GenerationRequest`` field a spec field reaches when its
# name there differs (``sampler`` -> ``sample_method``).
ENGINE_NAME = "engine_name"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoraRef:
    """A LoRA by name (file stem in the LoRA dir, or a path inside it) with its weight."""

    name: str
    weight: float = 1.0
    is_high_noise: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSpec(EngineContext):
    """Everything an image job may set; then ``GenerationService.submit_spec``. Context
    options: ``EngineContext``.

    ``<lora:name:w>`` tags in ``prompt`` work as well as ``loras``. Companion fields (``vae``,
    ``t5xxl``, ...) name files inside the models dir and win over the architecture plan.
    """

    prompt: str
    negative_prompt: str = ""
    model: str | None = None  # id, relative path or name; None: the server's default
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    image_cfg_scale: float | None = None
    guidance: float | None = None
    seed: int | None = None  # None or -1: random (the job reports the seed used)
    sampler: str | None = field(default=None, metadata={ENGINE_NAME: "sample_method"})
    scheduler: str | None = None
    batch_count: int = 1
    clip_skip: int | None = None
    eta: float | None = None
    flow_shift: float | None = None
    # img2img / inpainting / ControlNet
    init_image: ImageInput | None = None
    mask_image: ImageInput | None = None
    strength: float | None = None
    control_image: ImageInput | None = None
    control_net: str | None = None
    control_strength: float | None = None
    canny: bool = False
    # PhotoMaker
    photo_maker: str | None = None
    photo_maker_images: tuple[ImageInput, ...] = ()
    photo_maker_id_embed: str | None = None
    photo_maker_style_strength: float | None = None
    ref_images: tuple[ImageInput, ...] = ()
    # structured engine options (the library's own frozen types)
    loras: tuple[LoraRef, ...] = ()
    # a preset ("balanced"), a mode name ("ucache") or options; resolved for the model's
    # architecture when the job is planned (sdcpp.cache_presets)
    cache: CacheOptions | str | None = None
    hires: HiresFix | None = None
    vae_tiling: VaeTiling | None = None
    skip_layer_guidance: SkipLayerGuidance | None = None
    # companions inside the models dir (explicit: they win over the plan)
    vae: str | None = None
    clip_l: str | None = None
    clip_g: str | None = None
    t5xxl: str | None = None
    llm: str | None = None
    taesd: str | None = None
    lora_dir: str | None = None
    embedding_dir: str | None = None
    # output
    output_format: OutputFormat = "png"
    output_quality: int = 90
    preview: bool = True
    extra: dict[str, str] = field(default_factory=dict)  # dialect info kept with the job

    KIND = "image"

    @property
    def job_kind(self) -> str:
        """The queue's kind name for this job (what ``/api/queue`` shows as ``type``)."""
        if self.control_image is not None:
            return "controlnet"
        if self.mask_image is not None:
            return "inpainting"
        return "img2img" if self.init_image is not None else "txt2img"

    def validate(self) -> None:
        """SpecError naming the first field out of ``limits.LIMITS`` (sides: the nearest
        valid sizes; the engine would otherwise silently change them)."""
        if not isinstance(self.prompt, str) or not self.prompt:
            raise SpecError("prompt must be a non-empty string")
        if self.mask_image is not None and self.init_image is None:
            raise SpecError("mask_image needs an init_image")
        if self.canny and self.control_image is None:
            raise SpecError("canny needs a control_image")
        if self.output_format not in ("png", "jpeg", "webp"):
            raise SpecError("output_format must be one of png, jpeg, webp")
        for name in limits.LIMITS:
            if name == "lora_weight" or not hasattr(self, name):
                continue
            if problem := limits.check(name, getattr(self, name)):
                raise SpecError(problem)
        for lora in self.loras:
            if problem := limits.check("lora_weight", lora.weight):
                raise SpecError(f"LoRA {lora.name!r}: {problem}")


# ImageSpec fields that do not reach the library's GenerationRequest as they are: the server
# resolves them into files or stored images (model, companions, images, LoRAs), the worker
# rebuilds them from JSON (structured options), or they shape the output and the job. Every
# other field is a plain generation option: see ``generation_options``.
SPECIAL_FIELDS = frozenset(
    {
        "prompt", "model", "seed", "loras", "canny", "preview", "extra",
        "init_image", "mask_image", "control_image", "photo_maker_images", "ref_images",
        "cache", "hires", "vae_tiling", "skip_layer_guidance",
        "vae", "clip_l", "clip_g", "t5xxl", "llm", "taesd",
        "output_format", "output_quality",
        *CONTEXT_FIELDS,
    }
)  # fmt: skip


def generation_options(spec_type: type[ImageSpec] = ImageSpec) -> dict[str, str]:
    """Spec field -> library ``GenerationRequest`` field for every plain generation option of
    ``spec_type``: what the worker's params carry (``job_record.image_params``) and what the
    native request accepts by the spec's own name (``schemas.native``). A new spec field lands
    here by itself; ``ENGINE_NAME`` metadata renames it."""
    if (known := _OPTIONS.get(spec_type)) is None:
        known = _OPTIONS[spec_type] = {
            f.name: f.metadata.get(ENGINE_NAME, f.name)
            for f in fields(spec_type)
            if f.name not in SPECIAL_FIELDS
        }
    return known


_OPTIONS: dict[type[ImageSpec], dict[str, str]] = {}  # per spec class: derived once
