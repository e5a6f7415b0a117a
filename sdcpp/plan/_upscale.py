"""Upscaler plans: what an ESRGAN file is and how the engine's upscaler runs it.

>>> plan = upscaler_plan("RealESRGAN_x4plus.safetensors")
>>> plan.architecture, plan.scale, plan.tile_size
('esrgan', 4, 128)

The one place both ``sdcpp.Upscaler`` and the server's upscale jobs decide from: a file the
detector recognises as something else (a checkpoint, a VAE, a LoRA) is refused naming what it
is, so the engine is never asked to load it as an upscaler. A file the detector cannot place
("unknown") is let through with a note: the engine's own loader is then the judge.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..detect import Detection, detect
from ..errors import ModelLoadError

__all__ = ["UPSCALE_TILE_SIZE", "UpscalerPlan", "upscaler_plan"]

# The engine's upscaler runs the image in square tiles of this side (the native binding's
# default, csrc/context.cpp); smaller tiles use less memory and take longer.
UPSCALE_TILE_SIZE = 128
UPSCALER_IDS = frozenset({"esrgan"})
_ROLES = {"checkpoint": "checkpoint", "diffusion_model": "diffusion model"}


@dataclass(frozen=True, slots=True)
class UpscalerPlan:
    """``scale``: the native factor the header shows (None when the detector could not tell);
    ``tile_size``: the tile side the engine runs with."""

    path: Path
    architecture: str  # the detection id: "esrgan", or "unknown"
    name: str  # the detector's human name, e.g. "ESRGAN x4"
    scale: int | None
    tile_size: int = UPSCALE_TILE_SIZE
    notes: tuple[str, ...] = ()

    def view(self, factor: int | None = None) -> dict[str, Any]:
        """What a job's JSON shows of the plan, in the shape of an image job's plan
        (architecture, model, context, defaults, notes). ``factor``: the job's asked factor;
        None: the native scale fills it and is listed under ``defaults``."""
        defaults = {"factor": self.scale} if factor is None and self.scale is not None else {}
        return {
            "architecture": self.architecture,
            "name": self.name,
            "model": self.path.name,
            "scale": self.scale,
            "context": {"tile_size": self.tile_size},
            "defaults": defaults,
            "notes": list(self.notes),
        }


def upscaler_plan(path: str | os.PathLike[str], detection: Detection | None = None) -> UpscalerPlan:
    """Plan the upscaler file at ``path`` from its header (``detection``: one already made).

    Raises ModelLoadError for a missing or unreadable file, and for a file the detector
    recognises as something other than an upscaler, naming the file and what it is."""
    file = Path(path)
    found = detection if detection is not None else detect(file)
    if found.id == "unknown":
        note = "not recognised as an ESRGAN model by its tensor names: the engine will try it"
        return UpscalerPlan(file, found.id, found.name, None, notes=(note,))
    if found.id not in UPSCALER_IDS:
        role = _ROLES.get(found.role)
        what = f"{found.name} ({role})" if role else found.name
        raise ModelLoadError(f"{file.name} is {what}, not an ESRGAN upscaler")
    return UpscalerPlan(file, found.id, found.name, _scale(found))


def _scale(found: Detection) -> int | None:
    # The detector names an ESRGAN file by its scale ("ESRGAN x4", from the up-sampling
    # layers the header has: see detect/_components.esrgan).
    match = re.fullmatch(r"ESRGAN x(\d+)", found.name)
    return int(match.group(1)) if match else None
