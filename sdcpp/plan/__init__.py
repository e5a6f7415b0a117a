"""Context plans: how to load a detected model, with which companions and settings.

>>> plan = plan_for(sdcpp.detect("flux1-dev.gguf"), candidates, path="flux1-dev.gguf")
>>> plan.load_as, sorted(plan.files), [m.slot for m in plan.missing], plan.defaults.cfg_scale
('diffusion_model', ['clip_l', 'vae'], ['t5xxl'], 1.0)

Seed 002 "Context Creation Methods": full checkpoints (SD 1.x/2.x/XL, SSD-1B, tiny UNets, SDXS,
SD3 with its encoders inside) load with ``model_path``; standalone diffusion weights (the FLUX
family, SD3.5 split files, Qwen-Image, Z-Image, Wan, LTX) with ``diffusion_model_path`` plus
companions. ``ARCHITECTURES`` (keyed by detection id, with a few variant keys) says what each
needs; companions are chosen by *detected kind*, ties broken by path order:

=====================  ==========================  ==========================================
architecture           companions (when absent)    kinds that satisfy them
=====================  ==========================  ==========================================
sd1 / sd1_tiny         vae, clip_l                 vae:kl4, clip_l
sd2                    vae, clip_l (OpenCLIP-H)    vae:kl4, (none detected: pass clip_l=)
sdxl / ssd1b           vae, clip_l, clip_g         vae:kl4, clip_l, clip_g (+ optional VAE)
sdxl_refiner           vae, clip_g                 vae:kl4, clip_g
sdxs                   taesd, clip_l               taesd, clip_l
sd3 / sd3.5_large      vae, clip_l, clip_g, t5xxl  vae:kl16, clip_l, clip_g, t5xxl:t5
flux_dev/schnell/...   vae, clip_l, t5xxl          vae:kl16, clip_l, t5xxl:t5
chroma                 vae, t5xxl                  vae:kl16, t5xxl:t5
chroma_radiance        t5xxl                       t5xxl:t5 (pixel space: no VAE)
flux2 [dev]            vae, llm                    vae:kl32, llm:mistral
flux2 [klein] 4B / 9B  vae, llm                    vae:kl32, llm:qwen3@2560 / llm:qwen3@4096
qwen_image(_edit)      vae, llm (+ llm_vision)     vae:wan16, llm:qwen2.5-vl@3584
z_image                vae, llm                    vae:kl16, llm:qwen3@2560
wan2.1_t2v             vae, t5xxl                  vae:wan16, t5xxl:umt5
wan2.1_i2v / flf2v     vae, t5xxl, clip_vision     vae:wan16, t5xxl:umt5, clip_vision:vit-h
wan2.2 A14B t2v / i2v  vae, t5xxl, high_noise      vae:wan16, t5xxl:umt5, same id + tensors
wan2.2 TI2V 5B         vae, t5xxl                  vae:wan48, t5xxl:umt5
ltxv                   (unsupported by the pinned engine)
unknown                none; model_path first, then diffusion_model_path
=====================  ==========================  ==========================================

A companion is only asked for when the main file lacks that part (a checkpoint's "contains:"
evidence). ``raise_if_missing`` names each missing one and what would satisfy it;
``load_with_fallback`` retries with the other method and says so in the log.

Upscalers have a plan of their own (``upscaler_plan``): the detection id, the native scale the
header shows and the tile size; a file detected as anything else is refused naming what it is.
"""

from __future__ import annotations

from ._load import (
    load_from_models_dir,
    load_with_fallback,
    missing_companions,
    plan_from_registry,
    requirements,
)
from ._plan import (
    ContextPlan,
    MissingCompanion,
    companions_for,
    contained_parts,
    kind_tags,
    plan_for,
    raise_if_missing,
    raise_if_unsupported,
)
from ._table import (
    ARCHITECTURES,
    COMPANION_SLOTS,
    UNKNOWN,
    ArchSpec,
    Companion,
    LoadAs,
    RecommendedDefaults,
    spec_for,
    spec_key,
)
from ._upscale import UPSCALE_TILE_SIZE, UpscalerPlan, upscaler_plan

__all__ = [
    "ARCHITECTURES",
    "COMPANION_SLOTS",
    "UNKNOWN",
    "UPSCALE_TILE_SIZE",
    "ArchSpec",
    "Companion",
    "ContextPlan",
    "LoadAs",
    "MissingCompanion",
    "RecommendedDefaults",
    "UpscalerPlan",
    "companions_for",
    "contained_parts",
    "kind_tags",
    "load_from_models_dir",
    "load_with_fallback",
    "missing_companions",
    "plan_for",
    "plan_from_registry",
    "raise_if_missing",
    "raise_if_unsupported",
    "requirements",
    "spec_for",
    "spec_key",
    "upscaler_plan",
]
