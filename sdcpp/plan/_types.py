"""The shapes of the architecture table (``_table``): a companion a model needs, the settings
that suit it, one row per architecture, and the slots a plan may fill. Kept apart from the
rows so the table module is data and its lookup only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

from ..options import SampleMethod, Scheduler

LoadAs = Literal["model", "diffusion_model"]

# StableDiffusion keywords a plan may fill, in the order messages list them.
COMPANION_SLOTS = (
    "vae",
    "taesd",
    "clip_l",
    "clip_g",
    "t5xxl",
    "llm",
    "llm_vision",
    "clip_vision",
    "high_noise_diffusion_model",
)


@dataclass(frozen=True, slots=True)
class Companion:
    """A file an architecture needs beside its diffusion weights.

    ``kinds`` are kind tags (see ``kind_tags``) in order of preference: a detection id such as
    ``"clip_l"``, or a refinement such as ``"vae:kl16"`` (16-channel KL autoencoder),
    ``"t5xxl:umt5"`` or ``"llm:qwen3@2560"`` (family and hidden size). ``required`` companions
    are resolved from the models directory; optional ones are only suggested, because files
    that fit by shape may still be the wrong weights (an SD 1.x VAE fits SDXL). ``match_main``:
    the file must also have as many tensors as the main model (Wan 2.2's two experts).
    """

    slot: str
    kinds: tuple[str, ...]
    required: bool = True
    hint: str = ""  # what would satisfy it, e.g. "a T5-XXL encoder (e.g. t5xxl_fp16.safetensors)"
    match_main: bool = False


@dataclass(frozen=True, slots=True)
class RecommendedDefaults:
    """Settings the engine's docs use for an architecture; ``None``: the engine's default is fine.

    Advisory only: ``StableDiffusion.generate()`` keeps the engine's defaults, and callers (CLI,
    server) apply these explicitly through ``image_options()`` / ``video_options()`` and
    ``context_options()``.
    """

    cfg_scale: float | None = None
    sample_method: SampleMethod | None = None
    scheduler: Scheduler | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    flow_shift: float | None = None
    guidance: float | None = None  # FLUX.1 distilled guidance
    video_frames: int | None = None
    high_noise_steps: int | None = None  # Wan 2.2 A14B: steps of the high-noise expert
    high_noise_cfg_scale: float | None = None
    # Context hints (StableDiffusion keywords): memory placement and attention settings the
    # docs' example commands use (--clip-on-cpu, --offload-to-cpu, --diffusion-fa, ...).
    keep_clip_on_cpu: bool | None = None
    offload_params_to_cpu: bool | None = None
    diffusion_flash_attn: bool | None = None
    chroma_use_dit_mask: bool | None = None

    def image_options(self) -> dict[str, Any]:
        """Non-None options for ``StableDiffusion.generate()``."""
        return self._pick(_IMAGE_OPTIONS)

    def video_options(self) -> dict[str, Any]:
        """Non-None options for ``StableDiffusion.generate_video()``."""
        return self._pick(_VIDEO_OPTIONS)

    def context_options(self) -> dict[str, Any]:
        """Non-None hints for the ``StableDiffusion`` constructor."""
        return self._pick(_CONTEXT_OPTIONS)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def _pick(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


_IMAGE_OPTIONS = (
    "cfg_scale",
    "sample_method",
    "scheduler",
    "steps",
    "width",
    "height",
    "flow_shift",
    "guidance",
)
_VIDEO_OPTIONS = (
    "cfg_scale",
    "sample_method",
    "scheduler",
    "steps",
    "width",
    "height",
    "flow_shift",
    "video_frames",
    "high_noise_steps",
    "high_noise_cfg_scale",
)
_CONTEXT_OPTIONS = (
    "keep_clip_on_cpu",
    "offload_params_to_cpu",
    "diffusion_flash_attn",
    "chroma_use_dit_mask",
)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, SampleMethod | Scheduler) else value


@dataclass(frozen=True, slots=True)
class ArchSpec:
    """One row of the table. ``load_as`` is how the architecture is usually packaged; the plan
    follows the detected role where it is definite (a FLUX checkpoint with its encoders inside
    loads with ``model_path``). ``context``: constructor settings the model needs to be right
    (applied unless the caller overrides them), unlike the advisory ``defaults``."""

    name: str
    load_as: LoadAs
    companions: tuple[Companion, ...] = ()
    defaults: RecommendedDefaults = RecommendedDefaults()
    context: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    unsupported: str | None = None  # why the pinned engine cannot run it
    notes: tuple[str, ...] = ()
