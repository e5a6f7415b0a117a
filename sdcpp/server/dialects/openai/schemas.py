"""OpenAI Images request bodies; each converts itself into the one job spec with ``to_spec()``.

OpenAI's own fields keep OpenAI's value sets (anything else: 400 ``invalid_value``); fields
that change nothing here are accepted and echoed the way OpenAI answers them:

- ``quality``, ``style``, ``moderation``, ``user``/``safety_identifier``, ``input_fidelity``:
  accepted, no effect on the engine (``quality`` is echoed, ``user`` comes back as
  ``safety_identifier``);
- ``background``: the engine paints opaque images, so every answer says ``opaque``;
- ``model``: a name from the models dir; OpenAI's own names (``dall-e-2``, ``gpt-image-1``...,
  what Open WebUI sends when none is set) mean the server's default model.

sdcpp's extras are top-level fields, which is what the SDK's ``extra_body`` sends (and, for
edits and variations, extra form fields): negative_prompt, steps, cfg_scale, seed, sampler,
scheduler, loras, strength and ``cache``, the step cache: a preset (``off``, ``balanced``,
``fast``), a mode name (``ucache``, ``easycache``...) or ``{"mode", "settings"}`` (in a form,
that object as a JSON string), e.g. ``images.generate(..., extra_body={"cache": "fast"})``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ....jobspec import ImageSpec, LoraRef
from ...schemas.native import CacheItem

_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")
# OpenAI's model names: they name no file here, so they mean "the server's default model"
OPENAI_MODELS = re.compile(r"^(dall-e-\d|gpt-image-[\w.-]+|chatgpt-image-[\w.-]+)$")
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"]


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


class ImageOptions(BaseModel):
    """What generations and edits share: OpenAI's fields, then sdcpp's extras (top-level, as
    ``extra_body`` sends them). Unknown fields are refused (OpenAI: unknown_parameter)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=32000)
    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = "auto"
    quality: Quality | None = None
    response_format: Literal["b64_json", "url"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    # sdcpp's extras
    negative_prompt: str = ""
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    loras: list[LoraItem] = []
    strength: float | None = None
    cache: str | CacheItem | None = None

    def to_spec(
        self, model: str | None = None, size: tuple[int, int] | None = None, **images: Any
    ) -> ImageSpec:
        """The job spec; ``model`` is the resolved name (``resolve_model``), ``size`` the
        output size an edit settled on, ``images`` the spec's image fields (init_image,
        mask_image, ref_images) already checked and stored."""
        width, height = size or parse_size(self.size)
        steps = self.steps
        if steps is None and (env := _env_number("DG_SERVE_NUM_INFERENCE_STEPS")) is not None:
            steps = int(env)
        cfg = self.cfg_scale
        if cfg is None:
            cfg = _env_number("DG_SERVE_GUIDANCE_SCALE")
        return ImageSpec(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=model,
            width=width,
            height=height,
            steps=steps,
            cfg_scale=cfg,
            seed=None if self.seed in (None, -1) else self.seed,
            sampler=self.sampler,
            scheduler=self.scheduler,
            batch_count=self.n,
            loras=tuple(LoraRef(name=x.name, weight=x.weight) for x in self.loras),
            strength=self.strength,
            cache=self.cache.to_options() if isinstance(self.cache, CacheItem) else self.cache,
            output_format=self.output_format or "png",
            # OpenAI's 0-100 (100: least compressed) is the encoder's quality, 1-100
            output_quality=90
            if self.output_compression is None
            else max(1, self.output_compression),
            preview=bool(self.stream and self.partial_images),
            extra={"dialect": "openai"},
            **images,
        )

    def echo(self) -> dict[str, Any]:
        """The top-level fields OpenAI puts beside the images."""
        fields: dict[str, Any] = {
            "background": "opaque",  # the engine paints no alpha
            "output_format": self.output_format or "png",
            "quality": self.quality or "auto",
        }
        if who := (self.safety_identifier or self.user):
            fields["safety_identifier"] = who
        return fields


class ImagesGenerateRequest(ImageOptions):
    """POST /v1/images/generations (JSON)."""

    style: Literal["vivid", "natural"] | None = None


class ImagesEditRequest(ImageOptions):
    """POST /v1/images/edits: the form's text fields (the files are checked apart)."""

    input_fidelity: Literal["high", "low"] | None = None


class ImagesVariationRequest(BaseModel):
    """POST /v1/images/variations: image (a file), n, size, response_format, model, user; our
    extras ``prompt`` (none: the prompt stored in the image's PNG text, else an empty one),
    ``strength`` (how far from the image, default 0.6), steps, seed, cfg_scale, cache."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = "auto"
    response_format: Literal["b64_json", "url"] | None = None
    user: str | None = None
    prompt: str | None = None
    negative_prompt: str = ""
    strength: float = Field(0.6, ge=0.0, le=1.0)
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    cache: str | CacheItem | None = None

    def as_edit(self, prompt: str) -> ImagesEditRequest:
        """A variation is an edit of the whole image with the prompt it was made from."""
        fields = self.model_dump(exclude={"prompt"}, exclude_none=True)
        return ImagesEditRequest.model_validate({**fields, "prompt": prompt or " "})


def resolve_model(registry: Any, name: str | None, types: Any) -> str | None:
    """The model to queue: ``name`` when the models dir has it; OpenAI's names the server's
    default (None); any other unknown name raises the registry's ModelNotFoundError (404)."""
    if not name:
        return None
    from ....registry.errors import ModelNotFoundError

    try:
        return str(registry.get(name, type=types).id)
    except ModelNotFoundError:
        if OPENAI_MODELS.match(name):
            return None
        raise
