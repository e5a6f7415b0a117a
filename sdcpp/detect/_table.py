"""Shared pieces of the detection rules: fast name queries, the rule context and verdicts.

A checkpoint holds a few thousand tensor names; the rules ask a few dozen questions about them
("does any name start with ...", "how many ``double_blocks.N`` are there"). Joining the names
into one newline-separated string turns each question into a single C-level substring or regex
search, which keeps detection in the low milliseconds even for 20 GB files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Shape = tuple[int, ...]

# Where the parts of a single-file checkpoint live (stable-diffusion.cpp's name_conversion.cpp
# maps the same prefixes). Files without any diffusion prefix are standalone ("ComfyUI split")
# files: the engine loads them with the prefix "model.diffusion_model." prepended.
DIFFUSION_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "unet.", "transformer.")
VAE_PREFIXES = ("first_stage_model.", "vae.")
TEXT_PREFIXES = (
    "cond_stage_model.",
    "conditioner.embedders.",
    "text_encoders.",
    "text_encoder.",
    "text_encoder_2.",
    "te.",
    "te1.",
    "te2.",
    "te3.",
)


class Names:
    """Tensor names (in file order) with their shapes, in PyTorch order (``None``: unknown)."""

    __slots__ = ("_blob", "shapes")

    def __init__(self, shapes: Mapping[str, Shape | None]) -> None:
        self.shapes: dict[str, Shape | None] = dict(shapes)
        self._blob = "\n" + "\n".join(self.shapes) + "\n"

    def __len__(self) -> int:
        return len(self.shapes)

    def has(self, name: str) -> bool:
        return name in self.shapes

    def starts(self, prefix: str) -> bool:
        """Some name starts with ``prefix``."""
        return "\n" + prefix in self._blob

    def contains(self, text: str) -> bool:
        """Some name contains ``text``."""
        return text in self._blob

    def ends(self, suffix: str) -> bool:
        """Some name ends with ``suffix``."""
        return suffix + "\n" in self._blob

    def find(self, pattern: str) -> str | None:
        """The first whole name matching the regular expression ``pattern``."""
        m = re.search(f"^(?:{pattern})$", self._blob, re.MULTILINE)
        return m.group(0) if m else None

    def count(self, prefix: str) -> int:
        """Number of numbered blocks ``prefix{N}.`` (highest N + 1, as the engine counts)."""
        found = re.findall(f"^{re.escape(prefix)}(\\d+)\\.", self._blob, re.MULTILINE)
        return max(map(int, found), default=-1) + 1

    def shape(self, name: str | None) -> Shape | None:
        return self.shapes.get(name) if name is not None else None

    def dim(self, name: str | None, axis: int) -> int | None:
        shape = self.shape(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def numel(self, name: str) -> int | None:
        shape = self.shape(name)
        return math.prod(shape) if shape is not None else None

    def strip(self, prefix: str) -> Names:
        """The names under ``prefix``, without it."""
        n = len(prefix)
        return Names({k[n:]: v for k, v in self.shapes.items() if k.startswith(prefix)})

    def any_starts(self, prefixes: Iterable[str]) -> str | None:
        return next((p for p in prefixes if self.starts(p)), None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a rule decided. ``role`` None means "a diffusion model": the caller picks
    "checkpoint" or "diffusion_model" from the other parts the file holds."""

    id: str
    name: str
    evidence: tuple[str, ...] = ()
    role: str | None = None


@dataclass(slots=True)
class Ctx:
    """Everything a rule may look at."""

    full: Names  # every tensor of the file
    fmt: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    containers: frozenset[str] = frozenset()  # dict keys wrapping a pickled state dict
    prefix: str = ""  # the diffusion prefix found in the file ("" for standalone files)
    d: Names = field(init=False)  # the diffusion model's tensors, prefix removed

    def __post_init__(self) -> None:
        self.prefix = self.full.any_starts(DIFFUSION_PREFIXES) or ""
        self.d = self.full.strip(self.prefix) if self.prefix else self.full

    def ev(self, name: str | None, *, full: bool = False) -> str:
        """Evidence line for one tensor of the diffusion part (or of the whole file)."""
        if name is None:
            return "tensor (missing)"
        names = self.full if full else self.d
        shape = names.shape(name)
        shown = name if full else self.prefix + name
        return f"tensor {shown} {list(shape)}" if shape is not None else f"tensor {shown}"

    def mentions(self, *words: str) -> str | None:
        """Evidence line if a descriptive metadata value names one of ``words``.

        Only used to break ties the weights cannot decide (e.g. FLUX.1 Kontext has exactly the
        tensors of FLUX.1 dev): header metadata is written by the model's publisher or converter.
        """
        for key in _HINT_KEYS:
            value = str(self.metadata.get(key, "")).lower()
            for word in words:
                if word in value:
                    return f"metadata {key} = {self.metadata[key]!r} mentions {word!r}"
        return None


_HINT_KEYS = (
    "modelspec.architecture",
    "modelspec.title",
    "modelspec.description",
    "general.name",
    "general.basename",
    "general.finetune",
)


def parts(full: Names) -> list[str]:
    """Which parts of a pipeline a file holds, by the prefixes of its names."""
    found = []
    if full.any_starts(DIFFUSION_PREFIXES):
        found.append("diffusion model")
    if full.any_starts(VAE_PREFIXES):
        found.append("VAE")
    if full.any_starts(TEXT_PREFIXES):
        found.append("text encoder(s)")
    return found
