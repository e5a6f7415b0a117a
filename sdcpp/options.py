"""Typed options: enums whose values are the engine's own names, and frozen dataclasses.

A field left ``None`` means "the engine's default": nothing here restates a C default. Enum
values are the strings the engine's ``str_to_*`` functions accept (``"euler_a"``, ``"karras"``,
``"q8_0"``); ``tests/unit/test_options.py`` checks every one against the compiled engine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class _EngineEnum(enum.StrEnum):
    """A str enum accepting its value case-insensitively (``"Euler_A"`` -> EULER_A)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            folded = value.strip().lower()
            for member in cls:
                if member.value.lower() == folded:
                    return member
        return None


class SampleMethod(_EngineEnum):
    EULER = "euler"
    EULER_A = "euler_a"
    HEUN = "heun"
    DPM2 = "dpm2"
    DPMPP2S_A = "dpm++2s_a"
    DPMPP2M = "dpm++2m"
    DPMPP2Mv2 = "dpm++2mv2"
    IPNDM = "ipndm"
    IPNDM_V = "ipndm_v"
    LCM = "lcm"
    DDIM_TRAILING = "ddim_trailing"
    TCD = "tcd"
    RES_MULTISTEP = "res_multistep"
    RES_2S = "res_2s"
    ER_SDE = "er_sde"


class Scheduler(_EngineEnum):
    DISCRETE = "discrete"
    KARRAS = "karras"
    EXPONENTIAL = "exponential"
    AYS = "ays"
    GITS = "gits"
    SGM_UNIFORM = "sgm_uniform"
    SIMPLE = "simple"
    SMOOTHSTEP = "smoothstep"
    KL_OPTIMAL = "kl_optimal"
    LCM = "lcm"
    BONG_TANGENT = "bong_tangent"


class Prediction(_EngineEnum):
    EPS = "eps"
    V = "v"
    EDM_V = "edm_v"
    SD3_FLOW = "sd3_flow"
    FLUX_FLOW = "flux_flow"
    FLUX2_FLOW = "flux2_flow"


class RngType(_EngineEnum):
    STD_DEFAULT = "std_default"
    CUDA = "cuda"
    CPU = "cpu"


class WeightType(_EngineEnum):
    """Tensor types the engine can load or write (ggml's type names)."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    Q8_0 = "q8_0"
    Q5_0 = "q5_0"
    Q5_1 = "q5_1"
    Q4_0 = "q4_0"
    Q4_1 = "q4_1"
    Q2_K = "q2_K"
    Q3_K = "q3_K"
    Q4_K = "q4_K"
    Q5_K = "q5_K"
    Q6_K = "q6_K"
    IQ4_NL = "iq4_nl"
    MXFP4 = "mxfp4"


class PreviewMode(_EngineEnum):
    NONE = "none"
    PROJ = "proj"
    TAE = "tae"
    VAE = "vae"


class LoraApplyMode(_EngineEnum):
    AUTO = "auto"
    IMMEDIATELY = "immediately"
    AT_RUNTIME = "at_runtime"


class HiresUpscaler(_EngineEnum):
    NONE = "None"
    LATENT = "Latent"
    LATENT_NEAREST = "Latent (nearest)"
    LATENT_NEAREST_EXACT = "Latent (nearest-exact)"
    LATENT_ANTIALIASED = "Latent (antialiased)"
    LATENT_BICUBIC = "Latent (bicubic)"
    LATENT_BICUBIC_ANTIALIASED = "Latent (bicubic antialiased)"
    LANCZOS = "Lanczos"
    NEAREST = "Nearest"
    MODEL = "Model"


class CacheMode(_EngineEnum):
    """Step-caching accelerators (names as the engine's CLI spells them)."""

    DISABLED = "disabled"
    EASYCACHE = "easycache"
    UCACHE = "ucache"
    DBCACHE = "dbcache"
    TAYLORSEER = "taylorseer"
    CACHE_DIT = "cache-dit"
    SPECTRUM = "spectrum"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lora:
    path: str
    multiplier: float = 1.0
    is_high_noise: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VaeTiling:
    """VAE tiling: decode in tiles to bound memory for large images."""

    enabled: bool = True
    tile_size_x: int | None = None
    tile_size_y: int | None = None
    target_overlap: float | None = None
    rel_size_x: float | None = None
    rel_size_y: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HiresFix:
    """Second pass at a larger size (sd-webui's "hires fix")."""

    upscaler: HiresUpscaler | str = HiresUpscaler.LATENT
    model_path: str | None = None  # an ESRGAN model, for upscaler="Model"
    scale: float | None = None
    target_width: int | None = None
    target_height: int | None = None
    steps: int | None = None
    denoising_strength: float | None = None
    upscale_tile_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipLayerGuidance:
    layers: tuple[int, ...] = (7, 8, 9)
    layer_start: float | None = None
    layer_end: float | None = None
    scale: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Step caching; any field left None keeps the engine's default for that mode."""

    mode: CacheMode | str = CacheMode.DISABLED
    settings: dict[str, Any] = field(default_factory=dict)  # native CacheParams field -> value
