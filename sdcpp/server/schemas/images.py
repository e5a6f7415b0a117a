"""Request bodies of the image utilities and the estimate endpoint (native dialect)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .native import Text2ImgRequest

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


class EstimateRequest(Text2ImgRequest):
    """A generation body (seed 002 sends the one it is about to submit); only the size,
    steps, batch and model count. Nothing is required, not even the prompt."""

    prompt: str = Field("", max_length=20000)

    def estimate_fields(self) -> dict[str, Any]:
        spec = self.to_spec()
        return {
            "model_name": self.model_name,
            "width": spec.width or 512,
            "height": spec.height or 512,
            "steps": spec.steps or 20,
            "batch_count": self.batch_count,
        }
