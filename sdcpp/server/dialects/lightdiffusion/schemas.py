"""Seed 000's ``POST /api/generate`` payload and its conversion into the one job spec.

Only prompt, width, height and num_images are required; unknown keys are ignored (the seed
promises forward compatibility). Fields that mean nothing to this engine are accepted with any
value and reported (``IGNORED`` says why), never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ....jobspec import ImageSpec, SpecError
from ....options import HiresFix, HiresUpscaler

# LightDiffusion's (ComfyUI's) sampler names -> the engine's. A "_cfgpp" variant (CFG++
# guidance) has no engine equivalent and is refused like any other unmapped name.
SAMPLERS: dict[str, str] = {
    "euler": "euler",
    "euler_ancestral": "euler_a",
    "heun": "heun",
    "dpm_2": "dpm2",
    "dpmpp_2s_ancestral": "dpm++2s_a",
    "dpmpp_2m": "dpm++2m",
    "ipndm": "ipndm",
    "ipndm_v": "ipndm_v",
    "lcm": "lcm",
    "ddim": "ddim_trailing",
    "res_multistep": "res_multistep",
    "er_sde": "er_sde",
}
# LightDiffusion's scheduler names -> the engine's. "ays_sd15"/"ays_sdxl" are one engine
# scheduler: its AYS table is picked from the loaded model's version.
SCHEDULERS: dict[str, str] = {
    "normal": "discrete",
    "karras": "karras",
    "exponential": "exponential",
    "sgm_uniform": "sgm_uniform",
    "simple": "simple",
    "kl_optimal": "kl_optimal",
    "ays": "ays",
    "ays_sd15": "ays",
    "ays_sdxl": "ays",
}
# Payload fields with no meaning for this engine: accepted, counted in telemetry, answered in
# the X-Sdcpp-Ignored-Fields header.
IGNORED: dict[str, str] = {
    "batch_size": "images per request are num_images; same-signature requests are coalesced",
    "adetailer": "no ADetailer (face detect and re-paint) pass in this engine",
    "enhance_prompt": "no prompt-enhancing language model in this server",
    "stable_fast": "stable-fast compiles PyTorch models; this engine is ggml",
    "flux_enabled": "the model is the server's default (--model), not chosen per request",
    "realistic_model": "the model is the server's default (--model), not chosen per request",
    "multiscale_enabled": "no multiscale sampling in this engine",
    "multiscale_intermittent": "no multiscale sampling in this engine",
    "multiscale_factor": "no multiscale sampling in this engine",
    "multiscale_fullres_start": "no multiscale sampling in this engine",
    "multiscale_fullres_end": "no multiscale sampling in this engine",
    "keep_models_loaded": "the worker keeps models loaded per --keep-alive/--max-loaded-models",
}


class GenerateRequest(BaseModel):
    """Seed 000's payload, field for field (defaults as the seed writes them)."""

    model_config = ConfigDict(extra="allow")  # unknown keys: kept aside, then ignored

    prompt: str = Field(..., min_length=1, max_length=20000)
    negative_prompt: str = Field("", max_length=20000)
    width: int = Field(..., ge=64, le=4096)
    height: int = Field(..., ge=64, le=4096)
    num_images: int = Field(..., ge=1, le=16)
    scheduler: str | None = None  # None: the model plan's recommended scheduler
    sampler: str | None = None
    steps: int = Field(20, ge=1, le=150)
    hires_fix: bool = False
    img2img_enabled: bool = False
    img2img_image: str | None = None
    reuse_seed: bool = False
    enable_preview: bool = False
    guidance_scale: float | None = Field(None, ge=0.0, le=30.0)
    seed: int | None = Field(None, ge=-1, le=2**63 - 1)
    # no meaning here (IGNORED): any value accepted
    batch_size: Any = 1
    adetailer: Any = False
    enhance_prompt: Any = False
    stable_fast: Any = False
    flux_enabled: Any = False
    realistic_model: Any = False
    multiscale_enabled: Any = True
    multiscale_intermittent: Any = True
    multiscale_factor: Any = 0.5
    multiscale_fullres_start: Any = 10
    multiscale_fullres_end: Any = 8
    keep_models_loaded: Any = True

    def ignored(self) -> list[str]:
        """The no-meaning fields this request sent."""
        return [name for name in IGNORED if name in self.model_fields_set]

    def unknown(self) -> list[str]:
        return sorted(self.model_extra or {})

    def requested_seed(self) -> int | None:
        """The explicit seed; None (or -1) is random."""
        return None if self.seed is None or self.seed < 0 else self.seed

    def _init_image(self) -> bytes | None:
        if not self.img2img_enabled:
            return None
        if not self.img2img_image:
            raise SpecError("img2img_image (a base64 PNG) is required when img2img_enabled")
        text = self.img2img_image
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError("img2img_image is not valid base64") from None

    def to_spec(self) -> ImageSpec:
        """The spec of this request alone (its seed and image count are the batcher's)."""
        sampler = scheduler = None
        if self.sampler is not None:
            if self.sampler not in SAMPLERS:
                raise SpecError(
                    f"unknown sampler {self.sampler!r}; this engine maps: {', '.join(SAMPLERS)}"
                )
            sampler = SAMPLERS[self.sampler]
        if self.scheduler is not None:
            if self.scheduler not in SCHEDULERS:
                raise SpecError(
                    f"unknown scheduler {self.scheduler!r}; this engine maps: "
                    f"{', '.join(SCHEDULERS)}"
                )
            scheduler = SCHEDULERS[self.scheduler]
        spec = ImageSpec(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg_scale=self.guidance_scale,
            sampler=sampler,
            scheduler=scheduler,
            batch_count=self.num_images,
            init_image=self._init_image(),
            hires=HiresFix(upscaler=HiresUpscaler.LATENT, scale=2.0) if self.hires_fix else None,
            preview=self.enable_preview,
            output_format="png",
            extra={"dialect": "lightdiffusion"},
        )
        spec.validate()
        return spec


def signature(spec: ImageSpec) -> tuple[Any, ...]:
    """The fields that must match for two requests to share one engine call: everything that
    reaches the engine except the seed and the image count. The engine's ``batch_count``
    repeats one conditioning, so unlike LightDiffusion's torch batches the prompts must match
    too."""
    image = spec.init_image
    digest = hashlib.sha256(image).hexdigest()[:12] if isinstance(image, bytes) else image
    hires = dataclasses.astuple(spec.hires) if spec.hires is not None else None
    return (
        spec.prompt,
        spec.negative_prompt,
        spec.width,
        spec.height,
        spec.steps,
        spec.cfg_scale,
        spec.sampler,
        spec.scheduler,
        hires,
        digest,
        spec.preview,
    )
