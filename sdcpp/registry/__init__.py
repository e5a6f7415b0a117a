"""Model registry: what lies in a models directory, typed, identified and hashed on demand.

>>> reg = ModelRegistry("sdcpp-data/models", data_dir="sdcpp-data")     # doctest: +SKIP
>>> reg.refresh()                        # RefreshReport(found, updated, removed, total)
>>> reg.list(type="lora", search="detail", sort_by="date", sort_order="desc", limit=20)
>>> reg.short_hash("checkpoints/sd_xl_base_1.0.safetensors")           # A1111's 10 hex digits

Layout (seed 002 "Model Types"; ARCHITECTURE.md "Data on disk"): typed subfolders such as
``checkpoints``, ``diffusion_models``, ``vae``, ``text_encoders/{clip_l,clip_g,t5xxl,llm}``,
``loras``, ... give their files that type; weights files directly in the root are typed by
architecture detection (``sdcpp.detect``). Errors, beside those of ``sdcpp.errors``::

    SdcppError
    └── RegistryError                a file changed while being hashed
        ├── ModelNotFoundError       (also a LookupError) no such id, path or name
        ├── UnsafePathError          (also InvalidArgument) the path would leave the root
        └── AmbiguousModelError      (also InvalidArgument) a name matching several models
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import ModelRegistry
    from .entries import DirectoryStatus, ModelEntry, Page, RefreshReport
    from .errors import AmbiguousModelError, ModelNotFoundError, RegistryError, UnsafePathError
    from .hashing import sha256_file
    from .model_types import TYPE_INFO, ModelType, TypeInfo, type_from_detection
    from .paths import model_id

__all__ = [
    "TYPE_INFO",
    "AmbiguousModelError",
    "DirectoryStatus",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelType",
    "Page",
    "RefreshReport",
    "RegistryError",
    "TypeInfo",
    "UnsafePathError",
    "model_id",
    "sha256_file",
    "type_from_detection",
]


# Loaded on first use: ``sdcpp generate`` reads one cached digest through ``.hashing`` and must
# not pay for the registry's other modules (~10 ms of a 1-second CLI run).
_LAZY = {
    "ModelRegistry": ".core",
    **dict.fromkeys(("DirectoryStatus", "ModelEntry", "Page", "RefreshReport"), ".entries"),
    **dict.fromkeys(
        ("AmbiguousModelError", "ModelNotFoundError", "RegistryError", "UnsafePathError"),
        ".errors",
    ),
    "sha256_file": ".hashing",
    **dict.fromkeys(("TYPE_INFO", "ModelType", "TypeInfo", "type_from_detection"), ".model_types"),
    "model_id": ".paths",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sdcpp.registry' has no attribute {name!r}")
