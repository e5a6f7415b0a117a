"""The architecture table: how each detected model is loaded, what it needs, what suits it.

Sources: the engine's ``init()`` (src/stable-diffusion.cpp: which conditioner and VAE each
version builds, and the prefixes each file is loaded under) and its per-model docs (docs/*.md:
the companion files and the settings of every example command). Where seed 002's requirement
table disagrees with the engine's docs (it lists no VAE or T5 for Wan 2.2 A14B, and "Extra VAE"
for SDXL, whose checkpoints carry one), the docs win, because they are what the engine runs.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from ._types import COMPANION_SLOTS, ArchSpec, Companion, LoadAs, RecommendedDefaults

# the shapes are importable from here too (plan/__init__, _plan, _load and tests use them)
__all__ = [
    "ARCHITECTURES",
    "COMPANION_SLOTS",
    "UNKNOWN",
    "ArchSpec",
    "Companion",
    "LoadAs",
    "RecommendedDefaults",
    "spec_for",
    "spec_key",
]

# -- companions, shared between rows --------------------------------------------------------

_TE = "text_encoders"


def _vae(kind: str, what: str, example: str) -> Companion:
    return Companion("vae", (kind,), hint=f"a {what} (e.g. {example})")


VAE_KL4 = _vae("vae:kl4", "4-channel SD VAE", "vae-ft-mse-840000-ema-pruned.safetensors")
VAE_KL16 = _vae("vae:kl16", "16-channel FLUX.1/SD3 VAE", "ae.safetensors")
VAE_KL32 = _vae("vae:kl32", "32-channel FLUX.2 VAE", "flux2_ae.safetensors")
VAE_WAN16 = _vae("vae:wan16", "Wan 2.1 VAE", "wan_2.1_vae.safetensors")
VAE_QWEN = _vae("vae:wan16", "Qwen-Image VAE", "qwen_image_vae.safetensors")
VAE_WAN48 = _vae("vae:wan48", "Wan 2.2 VAE (48-channel)", "wan2.2_vae.safetensors")
CLIP_L = Companion("clip_l", ("clip_l",), hint="a CLIP-L text encoder (e.g. clip_l.safetensors)")
CLIP_G = Companion("clip_g", ("clip_g",), hint="a CLIP-G text encoder (e.g. clip_g.safetensors)")
T5XXL = Companion("t5xxl", ("t5xxl:t5",), hint="a T5-XXL encoder (e.g. t5xxl_fp16.safetensors)")
UMT5 = Companion(
    "t5xxl", ("t5xxl:umt5",), hint="a UMT5-XXL encoder (e.g. umt5_xxl_fp16.safetensors)"
)
CLIP_VISION_H = Companion(
    "clip_vision",
    ("clip_vision:vit-h",),
    hint="a CLIP vision ViT-H encoder (e.g. clip_vision_h.safetensors)",
)
QWEN25VL = Companion(
    "llm",
    ("llm:qwen2.5-vl@3584",),
    hint="a Qwen2.5-VL 7B text encoder (e.g. qwen_2.5_vl_7b.safetensors)",
)
QWEN25VL_VISION = Companion(
    "llm_vision",
    ("llm_vision",),
    required=False,
    hint="the Qwen2.5-VL vision projector (mmproj GGUF) when llm is a GGUF without it",
)


def _qwen3(hidden: int, size: str) -> Companion:
    hint = f"a Qwen3 {size} text encoder (e.g. qwen_3_{size}.safetensors)"
    return Companion("llm", (f"llm:qwen3@{hidden}",), hint=hint)


def _high_noise(model_id: str, *also: str) -> Companion:
    return Companion(
        "high_noise_diffusion_model",
        (model_id, *also),
        hint="the HighNoise expert of the same Wan 2.2 A14B model",
        match_main=True,
    )


# -- recommended settings ----------------------------------------------------------------

_SDXL = RecommendedDefaults(width=1024, height=1024)
_SD3 = RecommendedDefaults(cfg_scale=4.5, width=1024, height=1024, keep_clip_on_cpu=True)
_FLUX = RecommendedDefaults(cfg_scale=1.0, keep_clip_on_cpu=True)


def _big(**options: Any) -> RecommendedDefaults:
    """Settings for the large models, whose docs run --offload-to-cpu --diffusion-fa."""
    return RecommendedDefaults(offload_params_to_cpu=True, diffusion_flash_attn=True, **options)


_QWEN = _big(cfg_scale=2.5)  # flow_shift 3 is the engine's default
_WAN21 = RecommendedDefaults(
    cfg_scale=6.0, width=832, height=480, flow_shift=3.0, video_frames=33, diffusion_flash_attn=True
)
_WAN22_A14B = _big(
    cfg_scale=3.5,
    steps=10,
    high_noise_cfg_scale=3.5,
    high_noise_steps=8,
    width=832,
    height=480,
    flow_shift=3.0,
    video_frames=33,
)

_SD2_TE = Companion(
    "clip_l", (), hint="an OpenCLIP-H text encoder (the detector has no kind for it)"
)

ARCHITECTURES: dict[str, ArchSpec] = {
    # Full checkpoints: every part inside, loaded with model_path. The companions only apply
    # to files holding the diffusion model alone (a part the checkpoint carries is not asked for).
    "sd1": ArchSpec("Stable Diffusion 1.x", "model", (VAE_KL4, CLIP_L)),
    "sd1_tiny": ArchSpec("SD 1.x tiny UNet", "model", (VAE_KL4, CLIP_L)),
    "sd2": ArchSpec("Stable Diffusion 2.x", "model", (VAE_KL4, _SD2_TE)),
    "sdxl": ArchSpec(
        "Stable Diffusion XL",
        "model",
        (
            VAE_KL4,
            CLIP_L,
            CLIP_G,
            Companion(
                "vae",
                ("vae:kl4",),
                required=False,
                hint="sdxl_vae-fp16-fix.safetensors avoids NaNs of the built-in VAE in fp16",
            ),
        ),
        _SDXL,
    ),
    "sdxl_refiner": ArchSpec("SDXL refiner", "model", (VAE_KL4, CLIP_G), _SDXL),
    "ssd1b": ArchSpec("SSD-1B / Vega", "model", (VAE_KL4, CLIP_L, CLIP_G), _SDXL),
    # docs/distilled_sd.md: "--cfg-scale 1 and --steps 1 are mandatory"; the engine switches
    # SDXS to its tiny autoencoder itself (use_tae), so a bare UNet needs a TAESD beside it.
    "sdxs": ArchSpec(
        "SDXS",
        "model",
        (Companion("taesd", ("taesd",), hint="the SDXS tiny autoencoder (TAESD)"), CLIP_L),
        RecommendedDefaults(cfg_scale=1.0, steps=1),
    ),
    # SD3 Medium ships with its encoders inside (sd3_medium_incl_clips_t5xxlfp16); SD3.5 files
    # hold the MMDiT (and VAE) only and take all three encoders (docs/sd3.md).
    "sd3": ArchSpec("Stable Diffusion 3", "model", (VAE_KL16, CLIP_L, CLIP_G, T5XXL), _SD3),
    "sd3.5_large": ArchSpec(
        "Stable Diffusion 3.5 Large", "diffusion_model", (VAE_KL16, CLIP_L, CLIP_G, T5XXL), _SD3
    ),
    # Standalone diffusion weights, loaded with diffusion_model_path (docs/flux.md, ...).
    "flux_dev": ArchSpec("FLUX.1 [dev]", "diffusion_model", (VAE_KL16, CLIP_L, T5XXL), _FLUX),
    "flux_schnell": ArchSpec(
        "FLUX.1 [schnell]",
        "diffusion_model",
        (VAE_KL16, CLIP_L, T5XXL),
        RecommendedDefaults(cfg_scale=1.0, steps=4, keep_clip_on_cpu=True),
    ),
    "flux_kontext": ArchSpec(
        "FLUX.1 Kontext [dev]", "diffusion_model", (VAE_KL16, CLIP_L, T5XXL), _FLUX
    ),
    # docs/chroma.md: T5 only (T5CLIPEmbedder), and --chroma-disable-dit-mask in the example.
    "chroma": ArchSpec(
        "Chroma",
        "diffusion_model",
        (VAE_KL16, T5XXL),
        RecommendedDefaults(cfg_scale=4.0, keep_clip_on_cpu=True, chroma_use_dit_mask=False),
    ),
    # Pixel-space model: no VAE at all (docs/chroma_radiance.md).
    "chroma_radiance": ArchSpec(
        "Chroma1-Radiance", "diffusion_model", (T5XXL,), RecommendedDefaults(cfg_scale=4.0)
    ),
    # docs/flux2.md: [dev] reads Mistral Small 3.2; [klein] 4B/9B read Qwen3 4B/8B, told apart
    # by the text input width (three stacked LLM layers: 3 x 2560 or 3 x 4096).
    "flux2": ArchSpec(
        "FLUX.2 [dev]",
        "diffusion_model",
        (
            VAE_KL32,
            Companion(
                "llm",
                ("llm:mistral",),
                hint="a Mistral Small 3.2 24B text encoder "
                "(e.g. Mistral-Small-3.2-24B-Instruct-2506-Q4_K_M.gguf)",
            ),
        ),
        _big(cfg_scale=1.0),
    ),
    "flux2_klein_4b": ArchSpec(
        "FLUX.2 [klein] 4B",
        "diffusion_model",
        (VAE_KL32, _qwen3(2560, "4b")),
        _big(cfg_scale=1.0, steps=4),
        notes=("klein base (undistilled) models want --cfg-scale 4 and 20 steps instead",),
    ),
    "flux2_klein_9b": ArchSpec(
        "FLUX.2 [klein] 9B",
        "diffusion_model",
        (VAE_KL32, _qwen3(4096, "8b")),
        _big(cfg_scale=1.0, steps=4),
        notes=("klein base (undistilled) models want --cfg-scale 4 and 20 steps instead",),
    ),
    "flux2_klein": ArchSpec(
        "FLUX.2 [klein]",
        "diffusion_model",
        (VAE_KL32, Companion("llm", ("llm:qwen3",), hint="a Qwen3 4B or 8B text encoder")),
        _big(cfg_scale=1.0, steps=4),
    ),
    # docs/qwen_image*.md. The Qwen-Image VAE is a Wan 2.1-architecture VAE: both fit by shape.
    "qwen_image": ArchSpec(
        "Qwen-Image",
        "diffusion_model",
        (VAE_QWEN, QWEN25VL),
        _big(cfg_scale=2.5, width=1024, height=1024),
    ),
    "qwen_image_edit": ArchSpec(
        "Qwen-Image-Edit", "diffusion_model", (VAE_QWEN, QWEN25VL, QWEN25VL_VISION), _QWEN
    ),
    # "the --qwen-image-zero-cond-t flag must be enabled; otherwise, image editing quality will
    # degrade significantly" (docs/qwen_image_edit.md): a setting the model needs, not a hint.
    "qwen_image_edit_2511": ArchSpec(
        "Qwen-Image-Edit-2511",
        "diffusion_model",
        (VAE_QWEN, QWEN25VL, QWEN25VL_VISION),
        _QWEN,
        context=MappingProxyType({"qwen_image_zero_cond_t": True}),
    ),
    # docs/z_image.md: FLUX.1's VAE and Qwen3 4B (z_image.hpp is built for 2560-wide captions).
    # Turbo wants cfg 1; Z-Image base cfg 5 (the weights cannot tell them apart).
    "z_image": ArchSpec(
        "Z-Image",
        "diffusion_model",
        (VAE_KL16, _qwen3(2560, "4b")),
        _big(cfg_scale=1.0),
        notes=("Z-Image base (not Turbo) wants --cfg-scale 5",),
    ),
    # docs/wan.md: UMT5-XXL for all; CLIP vision H for 2.1 I2V/FLF2V (the engine builds it for
    # those only); the 2.2 VAE for TI2V 5B only; A14B runs a low- and a high-noise expert.
    "wan2.1_t2v": ArchSpec(
        "Wan 2.1 T2V",
        "diffusion_model",
        (VAE_WAN16, UMT5),
        _WAN21,
        notes=("a Wan 2.2 T2V A14B expert has the same tensors: pass high_noise_diffusion_model=",),
    ),
    "wan2.1_i2v": ArchSpec(
        "Wan 2.1 I2V", "diffusion_model", (VAE_WAN16, UMT5, CLIP_VISION_H), _WAN21
    ),
    "wan2.1_flf2v": ArchSpec(
        "Wan 2.1 FLF2V", "diffusion_model", (VAE_WAN16, UMT5, CLIP_VISION_H), _WAN21
    ),
    "wan2.2_t2v": ArchSpec(
        "Wan 2.2 T2V A14B",
        "diffusion_model",
        # the high-noise expert is often detected as 2.1 T2V 14B (same tensors, no metadata)
        (VAE_WAN16, UMT5, _high_noise("wan2.2_t2v", "wan2.1_t2v")),
        _WAN22_A14B,
    ),
    "wan2.2_ti2v_5b": ArchSpec(
        "Wan 2.2 TI2V 5B",
        "diffusion_model",
        (VAE_WAN48, UMT5),
        _big(cfg_scale=6.0, width=480, height=832, flow_shift=3.0, video_frames=33),
    ),
    "wan2.2_i2v": ArchSpec(
        "Wan 2.2 I2V A14B",
        "diffusion_model",
        (VAE_WAN16, UMT5, _high_noise("wan2.2_i2v")),
        _WAN22_A14B,
    ),
    "ltxv": ArchSpec(
        "LTX-Video",
        "diffusion_model",
        unsupported="the pinned stable-diffusion.cpp has no LTX-Video diffusion model",
    ),
}

# Anything else (including files the detector could not name): seed 002 "unknown architectures
# default to traditional loading" (model_path), with the fallback to diffusion_model_path.
UNKNOWN = ArchSpec("unknown architecture", "model")

_SHAPE = re.compile(r"tensor (?:\S+\.)?txt_in\.weight \[(\d+), (\d+)\]")


def spec_key(detection: Any) -> str:
    """The table key for a detection: its id, or a variant key where one id covers models
    that need different companions (FLUX.2 sizes, Wan 2.2 TI2V 5B, Qwen-Image-Edit-2511)."""
    id_ = str(getattr(detection, "id", None) or "unknown")
    name = str(getattr(detection, "name", "") or "")
    evidence = "\n".join(getattr(detection, "evidence", ()) or ())
    if id_ == "flux2" and "klein" in name:
        m = _SHAPE.search(evidence)
        width = int(m.group(2)) // 3 if m else None
        return {2560: "flux2_klein_4b", 4096: "flux2_klein_9b"}.get(width or 0, "flux2_klein")
    if id_ == "wan2.2_t2v" and "5B" in name:
        return "wan2.2_ti2v_5b"
    if id_ == "qwen_image_edit" and "zero_cond_t" in evidence:
        return "qwen_image_edit_2511"
    return id_


def spec_for(detection: Any) -> ArchSpec:
    return ARCHITECTURES.get(spec_key(detection), UNKNOWN)
