"""The exception tree of sdcpp.

::

    SdcppError
    ├── InvalidArgument        (also a ValueError) bad input, caught before native code runs
    ├── ModelLoadError         a model (or upscaler) could not be loaded
    ├── GenerationError        the engine failed while generating or upscaling
    │   └── Cancelled          the generation was cancelled
    ├── ConversionError        convert() failed
    ├── ClosedError            the handle was closed
    └── UnsupportedError       this build or model cannot do that

Messages of errors raised after a native call carry the last error line the engine logged.
"""

from __future__ import annotations

__all__ = [
    "Cancelled",
    "ClosedError",
    "ConversionError",
    "GenerationError",
    "InvalidArgument",
    "ModelLoadError",
    "SdcppError",
    "UnsupportedError",
]


class SdcppError(Exception):
    """Base class of every error sdcpp raises on purpose."""


class InvalidArgument(SdcppError, ValueError):
    """An argument was rejected before anything reached native code."""


class ModelLoadError(SdcppError):
    """A model file could not be loaded."""


class GenerationError(SdcppError):
    """Generation (or upscaling) failed inside the engine."""


class Cancelled(GenerationError):
    """The generation was cancelled with ``cancel()``."""


class ConversionError(SdcppError):
    """``convert()`` failed."""


class ClosedError(SdcppError):
    """The object was used after ``close()``."""


class UnsupportedError(SdcppError):
    """This build of the engine, or this model, does not support the request."""
