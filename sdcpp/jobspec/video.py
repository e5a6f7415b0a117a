"""The video job spec: Wan 2.x / LTX text-to-video, image-to-video, first-last-frame.

Companions the spec leaves out are planned from the models dir by architecture (the worker's
``sdcpp.plan`` step, as ``from_models_dir`` does); named ones win. ``None``: the plan's
recommended setting, else the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from . import limits
from .context import EngineContext
from .errors import SpecError
from .image import ImageInput

AnimationFormat = Literal["webp", "gif"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoSpec(EngineContext):
    prompt: str
    negative_prompt: str = ""
    model: str | None = None  # None: the server default, else the first video model
    width: int | None = None  # None: the frames' size when given, else the plan's
    height: int | None = None
    video_frames: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    scheduler: str | None = None
    flow_shift: float | None = None
    high_noise_steps: int | None = None  # Wan 2.2 A14B's second expert
    high_noise_cfg_scale: float | None = None
    moe_boundary: float | None = None
    seed: int | None = None  # None or -1: random
    init_image: ImageInput | None = None  # first frame
    end_image: ImageInput | None = None  # last frame (first-last-frame video)
    fps: float = 16.0
    output_format: AnimationFormat = "webp"
    output_quality: int | None = None  # WebP quality; None: lossless
    # companions inside the models dir (explicit: they win over the plan)
    vae: str | None = None
    t5xxl: str | None = None
    clip_vision: str | None = None
    high_noise_diffusion_model: str | None = None
    lora_dir: str | None = None

    KIND = "video"
    LIMITED: ClassVar[dict[str, str]] = {
        "width": "video_side",
        "height": "video_side",
        "video_frames": "video_frames",
        "steps": "steps",
        "cfg_scale": "cfg_scale",
        "flow_shift": "flow_shift",
        "high_noise_steps": "high_noise_steps",
        "high_noise_cfg_scale": "high_noise_cfg_scale",
        "moe_boundary": "moe_boundary",
        "seed": "seed",
        "fps": "fps",
        "output_quality": "video_quality",
        "n_threads": "n_threads",
    }

    def validate(self) -> None:
        """SpecError naming the first field out of ``limits.LIMITS``."""
        if not isinstance(self.prompt, str) or not self.prompt:
            raise SpecError("prompt must be a non-empty string")
        if self.end_image is not None and self.init_image is None:
            raise SpecError("end_image (first-last-frame video) needs an init_image too")
        limits.check_fields(self, self.LIMITED, formats=("webp", "gif"))
