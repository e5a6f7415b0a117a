"""OpenAI Images request bodies; each converts itself into the one job spec with ``to_spec()``."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ....jobspec import ImageSpec, LoraRef

_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


class SizeError(ValueError):
    """``size`` is neither ``WxH`` nor ``auto`` (OpenAI answers 400 invalid_value)."""


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size in (None, "", "auto"):
        return None, None
    match = _SIZE.match(size)
    if not match:
        raise SizeError(f"invalid size {size!r}: expected WIDTHxHEIGHT or 'auto'")
    return int(match[1]), int(match[2])


def _env_number(name: str) -> float | None:
    """Seed 003's server-wide defaults (DG_SERVE_*), applied when a request leaves them out."""
    value = os.environ.get(name)
    return float(value) if value else None


class LoraItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    weight: float = 1.0


class ImagesGenerateRequest(BaseModel):
    """POST /v1/images/generations. Unknown fields are refused (OpenAI: unknown_parameter)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=32000)
    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = "auto"
    quality: str | None = None
    response_format: Literal["b64_json", "url"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    background: str | None = None
    style: str | None = None
    moderation: str | None = None
    user: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    # sdcpp's extras, top-level as extra_body sends them
    negative_prompt: str = ""
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    loras: list[LoraItem] = []

    def to_spec(self) -> ImageSpec:
        width, height = parse_size(self.size)
        steps = self.steps
        if steps is None and (env := _env_number("DG_SERVE_NUM_INFERENCE_STEPS")) is not None:
            steps = int(env)
        cfg = self.cfg_scale
        if cfg is None:
            cfg = _env_number("DG_SERVE_GUIDANCE_SCALE")
        return ImageSpec(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=self.model,
            width=width,
            height=height,
            steps=steps,
            cfg_scale=cfg,
            seed=None if self.seed in (None, -1) else self.seed,
            sampler=self.sampler,
            scheduler=self.scheduler,
            batch_count=self.n,
            loras=tuple(LoraRef(name=x.name, weight=x.weight) for x in self.loras),
            output_format=self.output_format or "png",
            output_quality=self.output_compression or 90,
            extra={"dialect": "openai"},
        )
