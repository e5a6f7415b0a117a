"""The one table of generation limits.

Request schemas, ``/api/parameters``, ``/api/validate`` and ``ImageSpec.validate()`` read
these bounds, so a value is accepted or refused the same way on every road. A new numeric
parameter needs one row here (and one field in the spec).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError


@dataclass(frozen=True, slots=True)
class Limit:
    low: float
    high: float
    multiple_of: int | None = None  # for sides: what the engine keeps without changing it
    integer: bool = False
    # What a form shows before a model is picked (a model's plan then suggests its own);
    # None: the engine's default, which depends on the model.
    default: float | None = None

    @property
    def step(self) -> float:
        """A form control's step: the side step, 1 for integers, else a fine decimal."""
        if self.multiple_of:
            return self.multiple_of
        if self.integer:
            return 1
        return 0.05 if self.high - self.low <= 2 else 0.1


# Image sides: the engine aligns latents to 64 px for most families; sides that are not a
# multiple of SIDE_STEP are refused with the nearest valid sizes (see ``nearest_sides``).
SIDE_STEP = 64

LIMITS: dict[str, Limit] = {
    "width": Limit(64, 4096, SIDE_STEP, integer=True, default=512),
    "height": Limit(64, 4096, SIDE_STEP, integer=True, default=512),
    "steps": Limit(1, 150, integer=True, default=20),
    "cfg_scale": Limit(0.0, 30.0, default=7.0),
    "image_cfg_scale": Limit(0.0, 30.0),
    "guidance": Limit(0.0, 100.0),
    "batch_count": Limit(1, 16, integer=True, default=1),
    "clip_skip": Limit(-1, 12, integer=True, default=-1),
    "eta": Limit(0.0, 10.0),
    "flow_shift": Limit(0.0, 100.0),
    "strength": Limit(0.0, 1.0, default=0.75),
    "control_strength": Limit(0.0, 10.0, default=0.9),
    "photo_maker_style_strength": Limit(0.0, 100.0),  # percent of the steps (engine: 20)
    "output_quality": Limit(1, 100, integer=True, default=90),
    "lora_weight": Limit(-10.0, 10.0, default=1.0),
    "n_threads": Limit(1, 512, integer=True),
    "seed": Limit(-1, 2**63 - 1, integer=True, default=-1),
    # video (Wan's VAE downsamples by 8 and its transformer patches by 2: sides step by 16)
    "video_side": Limit(16, 4096, 16, integer=True),
    "video_frames": Limit(1, 1024, integer=True),
    "high_noise_steps": Limit(1, 150, integer=True),
    "high_noise_cfg_scale": Limit(0.0, 30.0),
    "moe_boundary": Limit(0.0, 1.0),
    "fps": Limit(0.01, 120.0, default=16.0),
    "video_quality": Limit(1, 100, integer=True),
    # upscale
    "upscale_factor": Limit(1, 8, integer=True),
}


def nearest_sides(value: int, step: int = SIDE_STEP) -> tuple[int, int]:
    """The valid sides just below and just above ``value`` (equal when it is valid)."""
    low = max(step, value // step * step)
    high = low if low == value else low + step
    return low, high


def check(name: str, value: float | None, row: str | None = None) -> str | None:
    """Why ``value`` is out of ``LIMITS[row or name]``, or None when it is fine (or absent);
    ``name`` is the field the message names (a video's ``width`` reads row ``video_side``)."""
    if value is None:
        return None
    limit = LIMITS[row or name]
    if isinstance(value, bool) or (limit.integer and not isinstance(value, int)):
        return f"{name} must be an integer, got {value!r}"
    if not limit.low <= value <= limit.high:
        return f"{name} must be between {limit.low:g} and {limit.high:g}, got {value}"
    if limit.multiple_of and int(value) % limit.multiple_of:
        low, high = nearest_sides(int(value), limit.multiple_of)
        return (
            f"{name} {value} is not a multiple of {limit.multiple_of} (the engine would change "
            f"it); nearest valid: {low} or {high}"
        )
    return None


def check_fields(spec: object, rows: dict[str, str], formats: tuple[str, ...] = ()) -> None:
    """SpecError for the first of ``spec``'s fields out of its row (``rows``: field -> row
    name), or an ``output_format`` not in ``formats``."""
    if formats and getattr(spec, "output_format", None) not in formats:
        raise SpecError(f"output_format must be one of {', '.join(formats)}")
    for name, row in rows.items():
        if problem := check(name, getattr(spec, name), row):
            raise SpecError(problem)


def table() -> dict[str, dict[str, float | int | None]]:
    """The limits as plain JSON (``/api/parameters``): min, max, step, default, multiple_of."""
    return {
        name: {
            "min": lim.low,
            "max": lim.high,
            "step": lim.step,
            "default": lim.default,
            "multiple_of": lim.multiple_of,
        }
        for name, lim in LIMITS.items()
    }
