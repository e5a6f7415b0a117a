"""The registry's exceptions (the tree is drawn in the package docstring)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgument, SdcppError


class RegistryError(SdcppError):
    """Base of the model registry's errors."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model (or file) by that id, path or name."""


class UnsafePathError(RegistryError, InvalidArgument):
    """The path would leave the models root (``..``, absolute, or a symlink pointing out)."""


class AmbiguousModelError(RegistryError, InvalidArgument):
    """A name matches several models; use the id or relative path (or pass ``type``)."""


def no_model_message(root: Path) -> str:
    """What a request without any model hears: where to put one, and that no restart is needed."""
    return (
        f"no model installed: put a checkpoint (.safetensors or .gguf) in {root / 'checkpoints'} "
        "(or upload one: POST /api/models/upload?type=checkpoints&filename=NAME); "
        "it is picked up automatically, no restart needed"
    )
