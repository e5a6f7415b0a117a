"""Seed 001's request models (field names, defaults and types as the seed writes them)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ....jobspec import ImageSpec, LoraRef
from ....options import HiresFix, HiresUpscaler

# Seed 001's sampler names (A1111 spellings) -> the engine's (sampler, scheduler); the scheduler
# suffix ("Karras") wins over scheduler_type only when the name carries one.
SAMPLERS: dict[str, tuple[str, str | None]] = {
    "Euler": ("euler", None),
    "Euler a": ("euler_a", None),
    "Heun": ("heun", None),
    "DPM2": ("dpm2", None),
    "DPM++ 2M": ("dpm++2m", None),
    "DPM++ 2M Karras": ("dpm++2m", "karras"),
    "DPM++ 2S a": ("dpm++2s_a", None),
    "DPM++ 2S a Karras": ("dpm++2s_a", "karras"),
    "DPM2 Karras": ("dpm2", "karras"),
    "LCM": ("lcm", None),
    "iPNDM": ("ipndm", None),
    "DDIM": ("ddim_trailing", None),
    "TCD": ("tcd", None),
}
SCHEDULERS = {
    "karras": "karras",
    "exponential": "exponential",
    "normal": "discrete",
    "discrete": "discrete",
    "simple": "simple",
    "sgm_uniform": "sgm_uniform",
    "ays": "ays",
    "gits": "gits",
}


class LoRA(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(..., min_length=1)
    scale: float = Field(1.0, ge=-100.0, le=100.0)


class HiresConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool = False
    scale: float = Field(2.0, gt=1.0, le=8.0)
    upscaler: str = "Latent"
    steps: int = Field(20, ge=1, le=150)
    denoising_strength: float = Field(0.4, ge=0.0, le=1.0)


class Txt2ImgRequest(BaseModel):
    """Seed 001's Txt2ImgRequest; unknown keys ignored (the seed's FastAPI model does too)."""

    model_config = ConfigDict(extra="ignore")
    prompt: str = Field(..., min_length=1, max_length=20000)
    negative_prompt: str = Field("", max_length=20000)
    steps: int = Field(30, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=0.0, le=30.0)
    width: int = Field(512, ge=64, le=4096, multiple_of=8)
    height: int = Field(512, ge=64, le=4096, multiple_of=8)
    model: str | None = None  # seed default "stable-diffusion-v1-5"; None: the server's model
    sampler_name: str = "DPM++ 2M Karras"
    scheduler_type: str = "karras"
    fileType: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(85, ge=1, le=100)
    loras: list[LoRA | str] = Field(default_factory=list)
    hires: HiresConfig | None = None
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = Field(0.8, gt=0.0, lt=1.0)

    def lora_list(self) -> list[LoRA]:
        """Plain names are LoRAs at scale 1.0 (seed 001, note 4)."""
        return [LoRA(name=x, scale=1.0) if isinstance(x, str) else x for x in self.loras]

    def to_spec(self) -> ImageSpec:
        """The job spec of the first (base) pass: names unresolved except the ESRGAN upscaler,
        which the submitter resolves (``submit.hires_model``); the refiner is a second job."""
        if self.sampler_name not in SAMPLERS:
            raise ValueError(
                f"unknown sampler_name {self.sampler_name!r}; known: {', '.join(SAMPLERS)}"
            )
        if self.scheduler_type not in SCHEDULERS:
            raise ValueError(
                f"unknown scheduler_type {self.scheduler_type!r}; known: {', '.join(SCHEDULERS)}"
            )
        sampler, implied = SAMPLERS[self.sampler_name]
        hires = self.hires if self.hires is not None and self.hires.enabled else None
        jpg = self.fileType == "jpg" and not self.refiner_checkpoint  # the refiner re-encodes
        return ImageSpec(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=self.model,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            sampler=sampler,
            scheduler=implied or SCHEDULERS[self.scheduler_type],
            loras=tuple(LoraRef(name=x.name, weight=x.scale) for x in self.lora_list()),
            hires=None
            if hires is None
            else HiresFix(
                upscaler=HiresUpscaler.LATENT
                if hires.upscaler == "Latent"
                else HiresUpscaler.MODEL,
                scale=hires.scale,
                steps=hires.steps,
                denoising_strength=hires.denoising_strength,
            ),
            output_format="jpeg" if jpg else "png",
            output_quality=self.jpeg_quality,
            extra={"dialect": "diffusionapi"},
        )

    def refiner_spec(self, base_image: str, width: int, height: int) -> ImageSpec:
        """The refiner pass: img2img with ``refiner_checkpoint`` over the base pass's decoded
        image, denoising the last ``1 - refiner_switch_at`` of the schedule (the engine runs
        ``steps * strength`` steps of an img2img job)."""
        assert self.refiner_checkpoint
        base = self.to_spec()
        return dataclasses.replace(
            base,
            model=self.refiner_checkpoint,
            loras=(),  # LoRAs are trained for the base model
            hires=None,
            init_image=base_image,
            strength=round(1.0 - self.refiner_switch_at, 4),
            width=width,  # the base image's size (after hires)
            height=height,
            output_format="jpeg" if self.fileType == "jpg" else "png",
            extra={"dialect": "diffusionapi", "pass": "refiner"},
        )
