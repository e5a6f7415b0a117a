"""The models dir as A1111 names it: checkpoint titles, VAEs, LoRAs, upscalers, embeddings.

A checkpoint's A1111 name is its path inside its type folder (``sub/model.safetensors``), its
title that name plus ``[shorthash]`` (the first 10 hex digits of its SHA-256) once the hash is
known. Hashes of big files take seconds, so a listing hashes within a time budget and leaves
the rest to a background thread; a title is found again with or without its hash.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import PurePosixPath
from typing import Any

from ....options import HiresUpscaler
from ....registry import ModelRegistry, ModelType
from ....registry.entries import ModelEntry
from ....registry.errors import ModelNotFoundError, RegistryError

IMAGE_TYPES = ModelType.CHECKPOINT | ModelType.DIFFUSION_MODEL
UPSCALER_TYPES = ModelType.ESRGAN | ModelType.UPSCALER
HASH_BUDGET = 2.0  # seconds a listing may spend hashing before it answers
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")
# A1111's resize upscalers (no model) and latent modes: the engine's own hires upscalers.
RESIZERS = ("None", "Lanczos", "Nearest")
LATENT_MODES = tuple(u.value for u in HiresUpscaler if u.value.startswith("Latent"))


def a1111_name(entry: ModelEntry) -> str:
    """The path inside the entry's type folder, as A1111 lists it."""
    parts = PurePosixPath(entry.path).parts
    return "/".join(parts[1:]) if len(parts) > 1 else entry.path


def title(entry: ModelEntry) -> str:
    name = a1111_name(entry)
    return f"{name} [{entry.short_hash}]" if entry.short_hash else name


def checkpoints(registry: ModelRegistry, budget: float = HASH_BUDGET) -> list[ModelEntry]:
    """Image models, hashed within ``budget`` seconds (the rest hash in the background)."""
    entries = list(registry.list(type=IMAGE_TYPES, limit=None).items)
    deadline = time.monotonic() + budget
    pending = [e for e in entries if e.sha256 is None]
    for entry in pending:
        if time.monotonic() >= deadline:
            threading.Thread(target=_hash_all, args=(registry,), daemon=True).start()
            break
        _hash(registry, entry)
    return list(registry.list(type=IMAGE_TYPES, limit=None).items)


def _hash(registry: ModelRegistry, entry: ModelEntry) -> None:
    # removed or changed meanwhile: the next listing retries
    with contextlib.suppress(OSError, RegistryError):
        registry.sha256(entry.id)


def _hash_all(registry: ModelRegistry) -> None:
    for entry in registry.list(type=IMAGE_TYPES, limit=None).items:
        if entry.sha256 is None:
            _hash(registry, entry)


def sd_model(registry: ModelRegistry, entry: ModelEntry) -> dict[str, Any]:
    return {
        "title": title(entry),
        "model_name": PurePosixPath(entry.path).stem,
        "hash": entry.short_hash,
        "sha256": entry.sha256,
        "filename": str(registry.root / entry.path),
        "config": None,
    }


def find_checkpoint(registry: ModelRegistry, name: str) -> ModelEntry:
    """A checkpoint by A1111 title (with or without ``[hash]``), name, stem, short hash or
    anything the registry itself resolves. ModelNotFoundError otherwise."""
    wanted = name.strip()
    bare = _HASH_SUFFIX.sub("", wanted)
    entries = registry.list(type=IMAGE_TYPES, limit=None).items
    for entry in entries:
        names = {title(entry), a1111_name(entry), PurePosixPath(entry.path).stem}
        if wanted in names or bare in names:
            return entry
        if entry.sha256 and wanted.lower() in (entry.sha256, entry.short_hash):
            return entry
    try:
        return registry.get(bare, type=IMAGE_TYPES)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"model {name!r} not found") from None


def upscalers(registry: ModelRegistry) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
        for n in RESIZERS
    ]
    for entry in registry.list(type=UPSCALER_TYPES, limit=None).items:
        items.append(
            {
                "name": entry.name,
                "model_name": "ESRGAN",
                "model_path": str(registry.root / entry.path),
                "model_url": None,
                "scale": None,
            }
        )
    return items


def find_upscaler(registry: ModelRegistry, name: str) -> ModelEntry:
    return registry.get(name, type=UPSCALER_TYPES)


def hires_upscaler(registry: ModelRegistry, name: str | None) -> tuple[str, str | None]:
    """(engine hires upscaler, ESRGAN model path) for A1111's ``hr_upscaler``."""
    if not name:
        return HiresUpscaler.LATENT.value, None
    for value in (*LATENT_MODES, *RESIZERS):
        if name.strip().lower() == value.lower():
            return value, None
    entry = find_upscaler(registry, name)
    return HiresUpscaler.MODEL.value, str(registry.resolve(entry.id))


def vaes(registry: ModelRegistry) -> list[dict[str, Any]]:
    return [
        {"model_name": a1111_name(e), "filename": str(registry.root / e.path)}
        for e in registry.list(type=ModelType.VAE, limit=None).items
    ]


def loras(registry: ModelRegistry) -> list[dict[str, Any]]:
    return [
        {
            "name": PurePosixPath(e.path).stem,
            "alias": e.name,
            "path": str(registry.root / e.path),
            "metadata": {},
        }
        for e in registry.list(type=ModelType.LORA, limit=None).items
    ]


def embeddings(registry: ModelRegistry) -> dict[str, Any]:
    """A1111 reports vector shapes it read while loading; files unread here show 0."""
    loaded = {
        e.name: {
            "step": None,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
            "shape": 0,
            "vectors": 0,
        }
        for e in registry.list(type=ModelType.EMBEDDING, limit=None).items
    }
    return {"loaded": loaded, "skipped": {}}
