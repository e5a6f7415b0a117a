"""Request bodies of the image utilities and the estimate endpoint (native dialect)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OutputFormat = Literal["png", "jpeg", "webp"]
_IMAGE_DOC = "base64 or data: URL (PNG, JPEG or WebP)"


class ResizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., min_length=1, description=_IMAGE_DOC)
    width: int = Field(..., ge=8, le=4096)
    height: int = Field(..., ge=8, le=4096)
    mode: Literal["fit", "fill", "stretch"] = Field(
        "fit",
        description="fit: inside the box, aspect kept; fill: cover the box and centre-crop; "
        "stretch: exactly the box",
    )
    format: OutputFormat = "png"
    quality: int = Field(90, ge=1, le=100, description="JPEG and WebP only")


class CropRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., min_length=1, description=_IMAGE_DOC)
    x: int = Field(..., ge=0, le=65535)
    y: int = Field(..., ge=0, le=65535)
    width: int = Field(..., ge=1, le=4096)
    height: int = Field(..., ge=1, le=4096)
    format: OutputFormat = "png"
    quality: int = Field(90, ge=1, le=100, description="JPEG and WebP only")


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(None, description="default: the model generation would use")
    width: int = Field(512, ge=64, le=4096)
    height: int = Field(512, ge=64, le=4096)
    steps: int = Field(20, ge=1, le=150)
    batch_count: int = Field(1, ge=1, le=16)
