"""From a detection and the files at hand to a context plan: method, companions, settings."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UnsupportedError
from ..registry.model_types import ModelType
from ._table import (
    COMPANION_SLOTS,
    UNKNOWN,
    ArchSpec,
    Companion,
    LoadAs,
    RecommendedDefaults,
    spec_for,
)

PathLike = str | os.PathLike[str]

# The part of a checkpoint ("contains: ..." in the detection's evidence) that makes a companion
# unnecessary. CLIP vision, the LLM's vision projector and a second expert are never inside.
_PART_FOR_SLOT = {
    "vae": "VAE",
    "taesd": "VAE",
    "clip_l": "text encoder(s)",
    "clip_g": "text encoder(s)",
    "t5xxl": "text encoder(s)",
    "llm": "text encoder(s)",
}
_LOAD_AS_FOR_ROLE: dict[str, LoadAs] = {
    "checkpoint": "model",
    "diffusion_model": "diffusion_model",
}
_ALL_PARTS = frozenset({"diffusion model", "VAE", "text encoder(s)"})
# Where a missing companion goes (the registry's canonical folders).
_FOLDER_FOR_SLOT = {
    "vae": ModelType.VAE.folders[0],
    "taesd": ModelType.TAESD.folders[0],
    "high_noise_diffusion_model": ModelType.DIFFUSION_MODEL.folders[0],
}
_LLM_FAMILIES = {
    "Qwen3": "qwen3",
    "Qwen2.5-VL": "qwen2.5-vl",
    "Qwen2.5": "qwen2.5",
    "Mistral": "mistral",
}


@dataclass(frozen=True, slots=True)
class MissingCompanion:
    slot: str
    hint: str  # what would satisfy it and where to put it, naming the library keyword
    unsuitable: tuple[str, ...] = ()  # files of the right family that do not fit, and why
    put: str = ""  # the "put ... in models/<folder>/" part of ``hint``

    def advice(self, fields: Mapping[str, str] | None = None) -> str:
        """``hint``, or with ``fields`` (slot -> a caller's own field name, e.g. a REST
        request's ``t5xxl_path``) the same advice naming that field; a slot ``fields`` lacks
        gets only where to put the file (the caller has no field for it)."""
        if fields is None or not self.put:
            return self.hint
        name = fields.get(self.slot)
        return f"{self.put} or set {name}" if name else self.put


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """How to create the context for one model file.

    ``files`` maps StableDiffusion keywords (companion slots) to paths; ``context`` holds
    constructor settings the architecture needs; ``defaults`` the advisory recommendations.
    """

    detection: Any
    spec: ArchSpec
    load_as: LoadAs
    model_path: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    missing: list[MissingCompanion] = field(default_factory=list)
    defaults: RecommendedDefaults = field(default_factory=RecommendedDefaults)
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Human name for messages: the detection's, else the table row's."""
        return str(getattr(self.detection, "name", "") or self.spec.name)

    @property
    def other_method(self) -> LoadAs:
        return "model" if self.load_as == "diffusion_model" else "diffusion_model"

    def loader_kwargs(self, load_as: LoadAs | None = None) -> dict[str, Any]:
        """Keywords for ``StableDiffusion``: the main file under ``load_as``, then companions."""
        if self.model_path is None:
            raise ModelLoadError("this plan has no model file (planned from a detection only)")
        out: dict[str, Any] = {load_as or self.load_as: str(self.model_path)}
        out.update({slot: str(path) for slot, path in self.files.items()})
        return out

    def with_overrides(self, overrides: Mapping[str, PathLike | None]) -> ContextPlan:
        """Explicit companion files win over the plan; ``None`` means "attach none" (and the
        slot no longer counts as missing: the caller decided)."""
        files = dict(self.files)
        notes = list(self.notes)
        for slot, value in overrides.items():
            if slot not in COMPANION_SLOTS:
                continue
            if value is None:
                files.pop(slot, None)
            else:
                files[slot] = Path(value)
            notes.append(f"{slot}: explicit {slot}= overrides the plan")
        missing = [m for m in self.missing if m.slot not in overrides]
        return replace(self, files=files, missing=missing, notes=notes)


@dataclass(frozen=True, slots=True)
class _Candidate:
    path: Path
    detection: Any
    tags: tuple[str, ...]


def kind_tags(detection: Any) -> tuple[str, ...]:
    """Kind tags of a detected file, general to specific: the detection id, then refinements
    the header decides (``vae:kl16`` / ``vae:wan16`` / ``vae:wan48``, ``t5xxl:umt5``,
    ``llm:qwen3`` and ``llm:qwen3@2560``, ``clip_vision:vit-h``).

    They come from the detection's name and evidence lines (the detector reports the latent
    channels, hidden sizes and encoder kinds there), never from file names.
    """
    id_ = str(getattr(detection, "id", None) or "unknown")
    name = str(getattr(detection, "name", "") or "")
    evidence = "\n".join(getattr(detection, "evidence", ()) or ())
    tags = [id_]
    if id_ == "vae":
        z = _number(r"(\d+)-channel latent", evidence)
        family = "ltx" if "LTX" in name else "wan" if "Wan" in name else "kl"
        if z is not None:
            tags.append(f"vae:{family}{z}")
    elif id_ == "t5xxl":
        if name.startswith("UMT5"):
            tags.append("t5xxl:umt5")
        elif name.startswith("T5-XXL"):
            tags.append("t5xxl:t5")
    elif id_ == "llm":
        llm = _LLM_FAMILIES.get(name.removesuffix(" text encoder"))
        hidden = _number(r"hidden size (\d+)", evidence)
        if llm:
            tags.append(f"llm:{llm}")
            if hidden:
                tags.append(f"llm:{llm}@{hidden}")
    elif id_ == "clip_vision":
        m = re.search(r"ViT-(\w+)/", name)
        if m:
            tags.append(f"clip_vision:vit-{m.group(1).lower()}")
    return tuple(tags)


def contained_parts(detection: Any) -> frozenset[str]:
    """Parts the main file carries besides the diffusion model (from "contains: ..." evidence).

    A file detected as a standalone diffusion model carries none; a checkpoint without that
    evidence line (another detector) is taken as complete, as seed 002 treats checkpoints.
    """
    if getattr(detection, "role", None) != "checkpoint":
        return frozenset()
    for line in getattr(detection, "evidence", ()) or ():
        if line.startswith("contains: "):
            return frozenset(line.removeprefix("contains: ").split(" + "))
    return _ALL_PARTS


def plan_for(
    detection: Any,
    available: Iterable[tuple[PathLike, Any]] = (),
    *,
    path: PathLike | None = None,
) -> ContextPlan:
    """Plan the context for the model ``detection`` describes (file ``path``, if known).

    ``available``: (path, detection) of files that may serve as companions. Each required
    companion the main file lacks is chosen by kind: the candidates whose tags include the
    companion's most preferred kind, and among those the first by path (a stable sort, so the
    same directory always gives the same plan). File names are never consulted.
    """
    spec = spec_for(detection)
    role = getattr(detection, "role", None)
    notes: list[str] = []
    if spec is UNKNOWN:
        load_as: LoadAs = "model"
        notes.append(
            f"unknown architecture ({getattr(detection, 'name', '?')}): no companions known; "
            "loading with model_path, then diffusion_model_path (seed 002's fallback)"
        )
    else:
        load_as = _LOAD_AS_FOR_ROLE.get(str(role), spec.load_as)
        if load_as != spec.load_as:
            notes.append(f"packaged as a {role}: loading with {load_as}_path")
    notes.extend(spec.notes)
    main = Path(path) if path is not None else None
    pool = _pool(available, main)
    parts = contained_parts(detection)
    files: dict[str, Path] = {}
    missing: list[MissingCompanion] = []
    for comp in spec.companions:
        inside = _PART_FOR_SLOT.get(comp.slot) in parts
        if not comp.required:
            if comp.slot not in files and comp.slot not in {m.slot for m in missing}:
                notes.append(f"optional {comp.slot}: {comp.hint}")
            continue
        if inside or comp.slot in files:
            continue
        fits = _fits(comp, pool, detection)
        if fits:
            files[comp.slot] = fits[0].path
            notes.append(_chosen_note(comp.slot, fits))
        else:
            missing.append(_missing(comp, pool))
    if "text encoder(s)" in parts and any(_PART_FOR_SLOT.get(c.slot) for c in spec.companions):
        notes.append("text encoders: inside the checkpoint")
    _note_llm_vision(spec, files, pool, notes)
    if spec.unsupported:
        notes.append(f"unsupported: {spec.unsupported}")
    return ContextPlan(
        detection=detection,
        spec=spec,
        load_as=load_as,
        model_path=main,
        files=files,
        missing=missing,
        defaults=spec.defaults,
        context=dict(spec.context),
        notes=notes,
    )


def companions_for(detection: Any) -> list[str]:
    """Slots of the companions a detected model needs beyond what its own file carries."""
    return [m.slot for m in plan_for(detection).missing]


def raise_if_unsupported(plan: ContextPlan) -> None:
    if plan.spec.unsupported:
        raise UnsupportedError(f"{plan.name}: {plan.spec.unsupported}")


def raise_if_missing(plan: ContextPlan, fields: Mapping[str, str] | None = None) -> None:
    """Raise ModelLoadError naming each missing companion and what would satisfy it: the
    library keyword to pass, or with ``fields`` (slot -> field name) the caller's own field
    (``MissingCompanion.advice``), so a REST client reads ``t5xxl_path``, not ``t5xxl=``."""
    if not plan.missing:
        return
    where = f" ({plan.model_path.name})" if plan.model_path is not None else ""
    parts = []
    for m in plan.missing:
        text = f"{plan.name}{where} needs {m.slot}: {m.advice(fields)}"
        if m.unsuitable:
            text += " (unsuitable: " + ", ".join(m.unsuitable) + ")"
        parts.append(text)
    raise ModelLoadError("; ".join(parts))


# -- helpers ----------------------------------------------------------------------------------


def _number(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _pool(available: Iterable[tuple[PathLike, Any]], main: Path | None) -> list[_Candidate]:
    pool = [
        _Candidate(Path(p), d, kind_tags(d))
        for p, d in available
        if d is not None and (main is None or not _same_file(Path(p), main))
    ]
    pool.sort(key=lambda c: str(c.path))  # the documented tie-breaker
    return pool


def _fits(comp: Companion, pool: list[_Candidate], main: Any) -> list[_Candidate]:
    """Candidates of the first kind (in preference order) that has any."""
    for kind in comp.kinds:
        fits = [c for c in pool if kind in c.tags and _matches_main(comp, c, main)]
        if fits:
            return fits
    return []


def _matches_main(comp: Companion, cand: _Candidate, main: Any) -> bool:
    if not comp.match_main:
        return True
    ours, theirs = getattr(main, "tensor_count", None), getattr(cand.detection, "tensor_count", 0)
    return ours is None or ours == theirs


def _chosen_note(slot: str, fits: list[_Candidate]) -> str:
    first = fits[0]
    note = f"{slot}: {first.path.name} ({getattr(first.detection, 'name', '?')})"
    if len(fits) > 1:
        note += f"; {len(fits)} files fit, chose the first by path (pass {slot}= to choose)"
    return note


def _missing(comp: Companion, pool: list[_Candidate]) -> MissingCompanion:
    folder = _FOLDER_FOR_SLOT.get(comp.slot, ModelType.TEXT_ENCODER.folders[0])
    put = f"put {comp.hint} in models/{folder}/"
    bases = {k.split(":")[0].split("@")[0] for k in comp.kinds}
    unsuitable = tuple(
        f"{c.path.name} is {getattr(c.detection, 'name', '?')}" for c in pool if c.tags[0] in bases
    )
    return MissingCompanion(comp.slot, f"{put} or pass {comp.slot}=", unsuitable, put)


def _note_llm_vision(
    spec: ArchSpec, files: dict[str, Path], pool: list[_Candidate], notes: list[str]
) -> None:
    # llama.cpp GGUFs keep the vision tower in a separate mmproj file, which the detector has
    # no kind for: say so when an edit model's LLM came as GGUF.
    if "llm" not in files or not any(c.slot == "llm_vision" for c in spec.companions):
        return
    chosen = next((c for c in pool if c.path == files["llm"]), None)
    if chosen is not None and getattr(chosen.detection, "format", "") == "gguf":
        notes.append("llm is a GGUF without the vision tower: pass llm_vision= (its mmproj)")


__all__ = [
    "ContextPlan",
    "MissingCompanion",
    "companions_for",
    "contained_parts",
    "kind_tags",
    "plan_for",
    "raise_if_missing",
    "raise_if_unsupported",
]
