"""Typed, versioned job specs: what a job is, from request to engine.

Dialects build an :class:`ImageSpec` (``to_spec()``) and call
``GenerationService.submit_spec(spec, owner)``; :mod:`.limits` is the one table of bounds;
:mod:`.codec` the one serialization (strict decode).
"""

from __future__ import annotations

from .codec import VERSION, decode, encode
from .errors import LoraNotFound, SpecError
from .image import ImageInput, ImageSpec, LoraRef, OutputFormat
from .limits import LIMITS, Limit, nearest_sides

__all__ = [
    "LIMITS",
    "VERSION",
    "ImageInput",
    "ImageSpec",
    "Limit",
    "LoraNotFound",
    "LoraRef",
    "OutputFormat",
    "SpecError",
    "decode",
    "encode",
    "nearest_sides",
]
