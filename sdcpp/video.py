"""Video generation requests (Wan 2.x, LTX) and encoding frames to animated files.

Requests are validated here before native code runs, as for images. Frames are saved with
Pillow as animated WebP (lossless or quality-controlled) or GIF; the engine's own WebM writer
lives in its CLI only, not in the library we link, so WebM is not offered.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from . import _native
from ._generation import MAX_SIDE, MAX_STEPS, check_int, check_range, native_enum
from ._safetensors import atomic_write
from .errors import InvalidArgument
from .images import ImageLike, to_array
from .options import Lora, SampleMethod, Scheduler

__all__ = ["VideoRequest", "build_vid_params", "encode_animation", "save_animation"]

MAX_FRAMES = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoRequest:
    """Everything ``StableDiffusion.generate_video()`` accepts. ``None`` = the engine's default."""

    prompt: str
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    video_frames: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    sample_method: SampleMethod | str | None = None
    scheduler: Scheduler | str | None = None
    flow_shift: float | None = None
    high_noise_steps: int | None = None  # Wan 2.2 MoE: steps of the high-noise expert
    high_noise_cfg_scale: float | None = None
    moe_boundary: float | None = None
    seed: int | None = None
    clip_skip: int | None = None
    init_image: ImageLike | None = None  # I2V / FLF2V first frame
    end_image: ImageLike | None = None  # FLF2V last frame
    control_frames: Sequence[ImageLike] = ()  # VACE
    vace_strength: float | None = None
    strength: float | None = None
    loras: Sequence[Lora] = ()


def build_vid_params(req: VideoRequest, seed: int, loras: list[Any]) -> Any:
    """Validate ``req`` and return a native VidGenParams (``loras`` already native)."""
    p = _native.VidGenParams()
    if not isinstance(req.prompt, str) or not isinstance(req.negative_prompt, str):
        raise InvalidArgument("prompt and negative_prompt must be strings")
    p.prompt, p.negative_prompt = req.prompt, req.negative_prompt
    for name in ("width", "height"):
        value = getattr(req, name)
        check_int(name, value, 16, MAX_SIDE)
        if value is not None:
            if value % 16:
                raise InvalidArgument(f"{name} must be a multiple of 16 for video, got {value}")
            setattr(p, name, value)
    check_int("video_frames", req.video_frames, 1, MAX_FRAMES)
    check_int("steps", req.steps, 1, MAX_STEPS)
    check_int("high_noise_steps", req.high_noise_steps, 1, MAX_STEPS)
    check_int("clip_skip", req.clip_skip, -1, 12)
    check_range("cfg_scale", req.cfg_scale, 0.0, 100.0)
    check_range("high_noise_cfg_scale", req.high_noise_cfg_scale, 0.0, 100.0)
    check_range("flow_shift", req.flow_shift, 0.0, 100.0)
    check_range("moe_boundary", req.moe_boundary, 0.0, 1.0)
    check_range("vace_strength", req.vace_strength, 0.0, 10.0)
    check_range("strength", req.strength, 0.0, 1.0)
    for src in ("video_frames", "moe_boundary", "vace_strength", "strength", "clip_skip"):
        if (value := getattr(req, src)) is not None:
            setattr(p, src, value)
    s, h = p.sample_params, p.high_noise_sample_params
    for src, target, dst in (
        ("steps", s, "sample_steps"),
        ("cfg_scale", s, "txt_cfg"),
        ("flow_shift", s, "flow_shift"),
        ("high_noise_steps", h, "sample_steps"),
        ("high_noise_cfg_scale", h, "txt_cfg"),
    ):
        if (value := getattr(req, src)) is not None:
            setattr(target, dst, value)
    if req.sample_method is not None:
        s.sample_method = native_enum(
            req.sample_method, SampleMethod, _native.SampleMethod, "sample_method"
        )
    if req.scheduler is not None:
        s.scheduler = native_enum(req.scheduler, Scheduler, _native.Scheduler, "scheduler")
    size = (p.height, p.width)
    for name in ("init_image", "end_image"):
        if (image := getattr(req, name)) is not None:
            array = to_array(image, name=name)
            if array.shape[:2] != size:
                raise InvalidArgument(f"{name} must be {p.width}x{p.height}")
            setattr(p, name, array)
    if req.end_image is not None and req.init_image is None:
        raise InvalidArgument("end_image (FLF2V) needs an init_image too")
    p.control_frames = [to_array(f, name="control_frames") for f in req.control_frames]
    check_int("seed", seed, 0, 2**63 - 1)
    p.seed = seed
    p.loras = loras
    return p


def encode_animation(
    frames: Sequence[Image.Image],
    fmt: str = "webp",
    *,
    fps: float = 16.0,
    quality: int | None = None,
) -> bytes:
    """Frames as an animated WebP (lossless unless ``quality``) or GIF."""
    if not frames:
        raise InvalidArgument("no frames to encode")
    check_range("fps", fps, 0.1, 240.0)
    duration = max(1, round(1000 / fps))
    buf = io.BytesIO()
    first, rest = frames[0], list(frames[1:])
    if fmt == "webp":
        extra = {"quality": quality} if quality is not None else {"lossless": True}
        first.save(
            buf,
            format="WEBP",
            save_all=True,
            append_images=rest,
            duration=duration,
            loop=0,
            **extra,
        )
    elif fmt == "gif":
        first.save(buf, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)
    else:
        raise InvalidArgument(f"unsupported animation format {fmt!r} (webp or gif)")
    return buf.getvalue()


def save_animation(
    frames: Sequence[Image.Image],
    path: str | Path,
    *,
    fps: float = 16.0,
    quality: int | None = None,
) -> Path:
    """Write an animation atomically; the format follows the suffix (.webp or .gif)."""
    out = Path(path)
    data = encode_animation(frames, out.suffix.lower().lstrip("."), fps=fps, quality=quality)
    atomic_write(out, [data])
    return out
