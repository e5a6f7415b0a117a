"""What the model endpoints report: one model in detail, header validation, folders, statistics.

Everything comes from the registry (its index and cached detections) and ``sdcpp.plan`` (which
companions a model needs and which files in the models dir satisfy them). The functions block
(headers are read, files hashed): routers run them off the event loop.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from ..errors import InvalidArgument, ModelLoadError
from ..plan import plan_from_registry, requirements
from ..registry import ModelEntry, ModelRegistry, ModelType, Page, type_from_detection
from ..registry.errors import RegistryError

MODEL_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
# Folder type vs detected type pairs that are not worth a warning: the plan loads either way.
_INTERCHANGEABLE = (MODEL_TYPES, ModelType.ESRGAN | ModelType.UPSCALER)
METADATA_VALUE_MAX = 512  # training tools store megabytes of tag counts in metadata


def detection_dict(detection: Any) -> dict[str, Any] | None:
    """A detection as JSON; long metadata values are cut (the endpoint is for people)."""
    if detection is None:
        return None
    metadata = {
        str(k): v if len(v := str(value)) <= METADATA_VALUE_MAX else v[:METADATA_VALUE_MAX] + "…"
        for k, value in (getattr(detection, "metadata", None) or {}).items()
    }
    return {
        "id": detection.id,
        "name": detection.name,
        "role": detection.role,
        "format": detection.format,
        "evidence": list(detection.evidence),
        "tensor_count": detection.tensor_count,
        "parameters": detection.parameters,
        "dtypes": dict(detection.dtypes),
        "metadata": metadata,
    }


def describe(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """The entry, its detection, and for checkpoints and diffusion models: the companions it
    needs (``requirements``), the ones the models dir lacks, and how it would be loaded."""
    entry = registry.get(name)
    detection = registry.detection(entry.id)
    out: dict[str, Any] = {
        "model": entry.to_dict(),
        "detection": detection_dict(detection),
        "requirements": requirements(registry, entry.id),
        "missing_companions": [],
        "plan": None,
    }
    if entry.type & MODEL_TYPES:
        plan = _plan(registry, entry)
        out["missing_companions"] = [m.slot for m in plan.missing]
        out["plan"] = {
            "architecture": plan.name,
            "load_as": plan.load_as,
            "companions": {slot: _relative(registry, p) for slot, p in plan.files.items()},
            "missing": [
                {"slot": m.slot, "hint": m.advice({}), "unsuitable": list(m.unsuitable)}
                for m in plan.missing
            ],
            "unsupported": plan.spec.unsupported,
            "recommended": {k: v for k, v in plan.defaults.to_dict().items() if v is not None},
            "notes": list(plan.notes),
        }
    return out


def validate(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """Read the header again (the file may have changed since the scan), check that required
    companions are present, and summarise the tensor dtypes. ``valid``: every check passed;
    ``warnings`` do not count against it."""
    from ..detect import detect  # lazy, as in the registry: listing needs no detector

    entry = registry.get(name)
    path = registry.resolve(entry.id)
    checks: list[dict[str, Any]] = []
    warnings: list[str] = []
    out: dict[str, Any] = {"model": entry.to_dict(), "checks": checks, "warnings": warnings}
    if entry.type.is_text:
        try:
            path.read_text(encoding="utf-8")
            checks.append(_check("text", True, "readable UTF-8 text"))
        except (OSError, UnicodeDecodeError) as exc:
            checks.append(_check("text", False, f"not readable UTF-8 text: {exc}"))
        return {**out, "valid": all(c["ok"] for c in checks)}
    try:
        detection = detect(path)
    except ModelLoadError as exc:
        checks.append(_check("header", False, str(exc)))
        return {**out, "valid": False, "detection": None, "dtypes": None}
    checks.append(_check("header", True, f"{detection.format} header, {detection.name}"))
    if detection.id == "unknown":
        warnings.append("architecture not recognised: the engine may still load it")
    detected_type = type_from_detection(detection)
    if detected_type != entry.type and not any(
        detected_type & group and entry.type & group for group in _INTERCHANGEABLE
    ):
        warnings.append(
            f"in a {entry.type.slug} folder but detected as a {detected_type.slug} "
            f"({detection.name})"
        )
    if entry.type & MODEL_TYPES:
        plan = _plan(registry, entry)
        if plan.spec.unsupported:
            checks.append(_check("supported", False, plan.spec.unsupported))
        missing = "; ".join(f"{m.slot}: {m.advice({})}" for m in plan.missing)
        found = ", ".join(f"{s}={_relative(registry, p)}" for s, p in plan.files.items())
        checks.append(_check("companions", not plan.missing, missing or found or "none needed"))
    return {
        **out,
        "valid": all(c["ok"] for c in checks),
        "detection": detection_dict(detection),
        "dtypes": dtype_stats(detection),
    }


def dtype_stats(detection: Any) -> dict[str, Any]:
    """Tensor dtypes by count, most common first (a GGUF mixes quantisations: Q4_K + F32)."""
    total = sum(detection.dtypes.values())
    ranked = sorted(detection.dtypes.items(), key=lambda item: (-item[1], item[0]))
    return {
        "tensor_count": detection.tensor_count,
        "parameters": detection.parameters,
        "primary": ranked[0][0] if ranked else None,
        "by_dtype": [
            {"dtype": dtype, "tensors": n, "share": round(n / total, 4) if total else 0.0}
            for dtype, n in ranked
        ],
    }


def hash_model(
    registry: ModelRegistry,
    name: str,
    progress: Callable[[ModelEntry, int, int], object] | None = None,
) -> dict[str, Any]:
    """SHA-256 of a model file (from the registry's cache while the file is unchanged).
    ``progress(entry, bytes_done, bytes_total)`` follows the reading of an uncached file."""
    entry = registry.get(name)
    started = time.perf_counter()
    on_bytes = (lambda done, total: progress(entry, done, total)) if progress else None
    digest = registry.sha256(entry.id, on_bytes)
    return {
        "model_id": entry.id,
        "path": entry.path,
        "size": entry.size,
        "sha256": digest,
        "short_hash": digest[:10],
        "cached": entry.sha256 == digest,
        "seconds": round(time.perf_counter() - started, 3),
    }


def directories(registry: ModelRegistry) -> dict[str, Any]:
    """Each typed folder: whether it exists, can be written, and how many files it holds."""
    entries = registry.list(limit=None).items
    folders = []
    for status in registry.directories():
        prefix = status.folder + "/"
        folders.append(
            {
                **status.to_dict(),
                "writable": status.exists and os.access(status.path, os.W_OK),
                "files": sum(1 for e in entries if e.path.startswith(prefix)),
            }
        )
    root = registry.root
    return {
        "root": {
            "path": str(root),
            "exists": root.is_dir(),
            "writable": root.is_dir() and os.access(root, os.W_OK),
        },
        "directories": folders,
    }


def stats(registry: ModelRegistry) -> dict[str, Any]:
    """Counts and bytes per type (the registry's), per architecture, and hashing coverage."""
    entries = registry.list(limit=None).items
    architectures = Counter(e.architecture for e in entries if not e.type.is_text)
    return {
        **registry.stats(),
        "by_architecture": dict(sorted(architectures.items())),
        "hashed": sum(1 for e in entries if e.sha256),
        "detection_errors": sum(1 for e in entries if e.error),
    }


def _plan(registry: ModelRegistry, entry: ModelEntry) -> Any:
    return plan_from_registry(registry, entry.id)


def _relative(registry: ModelRegistry, path: os.PathLike[str] | str) -> str:
    """A companion's path as the client knows it: relative to the models dir."""
    root = os.path.realpath(registry.root)
    return os.path.relpath(os.path.realpath(path), root).replace(os.sep, "/")


def _check(name: str, ok: bool, message: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "message": message}


# -- the loaded model ------------------------------------------------------------------------
def loadable_path(registry: ModelRegistry, name: str) -> tuple[ModelEntry, str]:
    """The entry and real path of a model the worker can load as ``model`` (what image jobs
    name, so a load and a later job share one loaded context)."""
    entry = registry.get(name)
    if not entry.type & MODEL_TYPES:
        raise InvalidArgument(f"{entry.name} is a {entry.type.slug}, not a loadable model")
    return entry, str(registry.resolve(entry.id))


def is_loaded(
    registry: ModelRegistry, entry: ModelEntry, loaded: str | Collection[str] | None
) -> bool:
    """Whether the entry's file is the loaded model (a path) or one of them (a collection)."""
    if not loaded:
        return False
    try:
        path = str(registry.resolve(entry.id))
        return path == loaded if isinstance(loaded, str) else path in loaded
    except (RegistryError, InvalidArgument, OSError):
        return False


def list_models(
    registry: ModelRegistry,
    loaded: str | Collection[str] | None,
    *,
    sort_by: str,
    sort_order: str,
    limit: int | None,
    page: int,
    **filters: Any,
) -> Page:
    """``registry.list`` plus ``sort_by="loaded"``: the loaded models first, then by name
    ("desc" reverses both)."""
    if sort_by != "loaded":
        return registry.list(
            sort_by=sort_by,  # type: ignore[arg-type]  # the registry checks it
            sort_order=sort_order,  # type: ignore[arg-type]
            limit=limit,
            page=page,
            **filters,
        )
    if sort_order not in ("asc", "desc"):
        raise InvalidArgument(f"sort_order must be 'asc' or 'desc', not {sort_order!r}")
    if page < 1 or (limit is not None and limit < 1):
        raise InvalidArgument("page and limit must be at least 1")
    everything = list(registry.list(sort_order=sort_order, limit=None, **filters).items)  # type: ignore[arg-type]
    everything.sort(
        key=lambda e: not is_loaded(registry, e, loaded), reverse=sort_order == "desc"
    )  # stable: the name order stays within each group
    start = (page - 1) * (limit or 0)
    items = everything[start : start + limit] if limit else everything
    return Page(tuple(items), len(everything), page, limit)
