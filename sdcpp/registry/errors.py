"""The registry's exceptions (the tree is drawn in the package docstring)."""

from __future__ import annotations

from ..errors import InvalidArgument, SdcppError


class RegistryError(SdcppError):
    """Base of the model registry's errors."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model (or file) by that id, path or name."""


class UnsafePathError(RegistryError, InvalidArgument):
    """The path would leave the models root (``..``, absolute, or a symlink pointing out)."""


class AmbiguousModelError(RegistryError, InvalidArgument):
    """A name matches several models; use the id or relative path (or pass ``type``)."""
