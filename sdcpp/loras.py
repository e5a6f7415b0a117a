"""LoRAs named in prompts with AUTOMATIC1111's ``<lora:name:weight>`` tags.

``extract_lora_tags("a cat <lora:ink:0.7>", "models/loras")`` returns the prompt without the
tag and ``[Lora(path="models/loras/ink.safetensors", multiplier=0.7)]``. Names resolve only to
files inside the LoRA directory (no ``..``, no absolute paths, no symlinks leading out).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidArgument
from .options import Lora

__all__ = ["LORA_EXTENSIONS", "extract_lora_tags", "lora_tags", "resolve_lora"]

LORA_EXTENSIONS = (".safetensors", ".gguf", ".ckpt", ".pt")
# <lora:NAME> or <lora:NAME:WEIGHT>; A1111 also accepts "<hypernet:...>", which we do not.
_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]+))?>", re.IGNORECASE)


def resolve_lora(name: str, lora_dir: str | os.PathLike[str]) -> Path:
    """The file for LoRA ``name`` (with or without extension) inside ``lora_dir``."""
    root = Path(lora_dir).resolve()
    clean = name.strip()
    if not clean or Path(clean).is_absolute() or ".." in Path(clean).parts:
        raise InvalidArgument(f"invalid LoRA name {name!r}")
    candidates = (
        [root / clean]
        if clean.lower().endswith(LORA_EXTENSIONS)
        else [root / f"{clean}{ext}" for ext in LORA_EXTENSIONS]
    )
    for candidate in candidates:
        if candidate.is_file():
            real = candidate.resolve()
            if not real.is_relative_to(root):
                raise InvalidArgument(f"LoRA {name!r} points outside the LoRA directory")
            return real
    raise InvalidArgument(f"LoRA {name!r} not found in {root}")


def lora_tags(prompt: str) -> list[tuple[str, float]]:
    """The (name, weight) of every ``<lora:name:weight>`` tag in ``prompt``, in order;
    InvalidArgument for a weight that is not a number."""
    tags: list[tuple[str, float]] = []
    for tag in _TAG.finditer(prompt):
        name, weight_text = tag.group(1), tag.group(2)
        try:
            tags.append((name, float(weight_text) if weight_text is not None else 1.0))
        except ValueError:
            raise InvalidArgument(f"bad LoRA weight in {tag.group(0)!r}") from None
    return tags


def extract_lora_tags(
    prompt: str, lora_dir: str | os.PathLike[str] | None
) -> tuple[str, list[Lora]]:
    """Remove ``<lora:name:weight>`` tags from ``prompt``; return (prompt, LoRAs)."""
    tags = list(_TAG.finditer(prompt))
    if not tags:
        return prompt, []
    if lora_dir is None:
        raise InvalidArgument("the prompt names LoRAs (<lora:...>) but no LoRA directory is set")
    loras = [
        Lora(path=str(resolve_lora(name, lora_dir)), multiplier=weight)
        for name, weight in lora_tags(prompt)
    ]
    cleaned = re.sub(r"\s{2,}", " ", _TAG.sub("", prompt)).strip()
    return cleaned, loras
