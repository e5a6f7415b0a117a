"""The upscale job spec: one image through an ESRGAN-family upscaler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import limits
from .image import ImageInput, OutputFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class UpscaleSpec:
    image: ImageInput
    upscaler: str | None = None  # a model in the models dir; None: the first one installed
    factor: int | None = None  # None: the model's own scale
    output_format: OutputFormat = "png"
    output_quality: int = 90
    n_threads: int | None = None

    KIND = "upscale"
    LIMITED: ClassVar[dict[str, str]] = {
        "factor": "upscale_factor",
        "output_quality": "output_quality",
        "n_threads": "n_threads",
    }

    def validate(self) -> None:
        limits.check_fields(self, self.LIMITED, formats=("png", "jpeg", "webp"))
