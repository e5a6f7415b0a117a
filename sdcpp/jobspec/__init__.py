"""Typed, versioned job specs: what a job is, from request to engine.

One spec per job kind — :class:`ImageSpec`, :class:`VideoSpec`, :class:`UpscaleSpec`,
:class:`ConvertSpec` and :class:`LoadSpec` (an explicit model load) — each with ``validate()``
against :mod:`.limits`, the one table of bounds. Dialects build one (``to_spec()``) and hand it
to ``GenerationService``; :mod:`.codec` is the one serialization (strict decode), what the job
store keeps (``sdcpp.server.job_record``).
"""

from __future__ import annotations

from .codec import KINDS, VERSION, Spec, decode, encode
from .context import CONTEXT_FIELDS, EngineContext
from .convert import ConvertSpec
from .errors import LoraNotFound, SpecError
from .image import ImageInput, ImageSpec, LoraRef, OutputFormat
from .limits import LIMITS, Limit, nearest_sides
from .load import LoadSpec
from .upscale import UpscaleSpec
from .video import VideoSpec

__all__ = [
    "CONTEXT_FIELDS",
    "KINDS",
    "LIMITS",
    "VERSION",
    "ConvertSpec",
    "EngineContext",
    "ImageInput",
    "ImageSpec",
    "Limit",
    "LoadSpec",
    "LoraNotFound",
    "LoraRef",
    "OutputFormat",
    "Spec",
    "SpecError",
    "UpscaleSpec",
    "VideoSpec",
    "decode",
    "encode",
    "nearest_sides",
]
