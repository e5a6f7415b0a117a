"""sdcpp: Python bindings for stable-diffusion.cpp.

>>> import sdcpp                                                    # doctest: +SKIP
>>> with sdcpp.StableDiffusion(model="m.safetensors") as sd:
...     images = sd.generate("a cat", width=512, height=512, steps=20, seed=42)
"""

from __future__ import annotations

from typing import Any

try:
    from . import _native
except ImportError as _exc:  # pragma: no cover - depends on how sdcpp was installed
    # Python finds the checkout's sdcpp/ (no compiled _native in it) before the installed one.
    raise ImportError(
        f"sdcpp was imported from {__path__[0]}, which has no compiled extension (_native). "
        "Either install this checkout in editable mode (pip install -e .) or run Python "
        "from outside the checkout so the installed sdcpp is found."
    ) from _exc
from ._generation import GenerationRequest
from ._logging import set_log_callback
from .convert import convert
from .errors import (
    Cancelled,
    ClosedError,
    ConversionError,
    GenerationError,
    InvalidArgument,
    ModelLoadError,
    SdcppError,
    UnsupportedError,
)
from .options import (
    CacheMode,
    CacheOptions,
    HiresFix,
    HiresUpscaler,
    Lora,
    LoraApplyMode,
    Prediction,
    PreviewMode,
    RngType,
    SampleMethod,
    Scheduler,
    SkipLayerGuidance,
    VaeTiling,
    WeightType,
)
from .parameters import read_parameters
from .stable_diffusion import Progress, StableDiffusion
from .upscaler import Upscaler

__version__: str = _native.__version__

__all__ = [
    "CacheMode",
    "CacheOptions",
    "Cancelled",
    "ClosedError",
    "ConversionError",
    "Detection",
    "GenerationError",
    "GenerationRequest",
    "HiresFix",
    "HiresUpscaler",
    "InvalidArgument",
    "Lora",
    "LoraApplyMode",
    "ModelLoadError",
    "Prediction",
    "PreviewMode",
    "Progress",
    "RngType",
    "SampleMethod",
    "Scheduler",
    "SdcppError",
    "SkipLayerGuidance",
    "StableDiffusion",
    "UnsupportedError",
    "Upscaler",
    "VaeTiling",
    "WeightType",
    "__version__",
    "convert",
    "detect",
    "detect_from_tensors",
    "engine_commit",
    "engine_version",
    "num_physical_cores",
    "read_parameters",
    "set_log_callback",
    "system_info",
]


# Loaded on first use: detection is not needed to generate, and every module imported here
# is resident in every process that imports sdcpp (the server's worker included).
_LAZY = {"Detection": ".detect", "detect": ".detect", "detect_from_tensors": ".detect"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sdcpp' has no attribute {name!r}")


def system_info() -> str:
    """The engine's description of this build: SIMD features, backends."""
    return str(_native.system_info())


def engine_version() -> str:
    """Version of the compiled stable-diffusion.cpp (the pinned source distribution)."""
    return str(_native.engine_version())


def engine_commit() -> str:
    return str(_native.engine_commit())


def num_physical_cores() -> int:
    return int(_native.num_physical_cores())
