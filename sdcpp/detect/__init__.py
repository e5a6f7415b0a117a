"""Architecture detection from file headers only.

>>> d = sdcpp.detect("sd_xl_base_1.0.safetensors")        # doctest: +SKIP
>>> d.id, d.role, d.evidence[0]                           # doctest: +SKIP
('sdxl', 'checkpoint', 'tensor model.diffusion_model.input_blocks.0.0.weight [320, 4, 3, 3]')

Only headers are read: the safetensors JSON header, GGUF key/values and tensor infos, or a
PyTorch zip's ``data.pkl`` scanned opcode by opcode (never unpickled), so a 20 GB file takes as
long as a small one. The rules mirror the engine's own (``get_sd_version`` in stable-diffusion.cpp
and the model headers that size each network), in this order:

1. adapters and upscalers that reuse diffusion-model names: LoRA, ControlNet, PhotoMaker, ESRGAN,
   textual-inversion embeddings (``_components``);
2. diffusion families, by decisive tensor names and shapes (``_models``, ``_unet``);
3. standalone autoencoders and encoders: VAE, TAESD, CLIP vision, CLIP-L/G, T5, LLMs;
4. otherwise ``unknown``.

Canonical ids — image/video models: ``sd1 sd2 sdxl sdxl_refiner ssd1b sd1_tiny sdxs sd3
sd3.5_large flux_dev flux_schnell flux_kontext chroma chroma_radiance flux2 qwen_image
qwen_image_edit z_image wan2.1_t2v wan2.1_i2v wan2.1_flf2v wan2.2_t2v wan2.2_i2v ltxv``;
components: ``vae taesd lora esrgan controlnet embedding clip_l clip_g t5xxl llm clip_vision
photomaker``; and ``unknown``. Where weights cannot tell two ids apart (FLUX.1 Kontext vs dev,
Qwen-Image-Edit before 2511 vs Qwen-Image, Wan 2.2 T2V A14B vs Wan 2.1 T2V 14B) the file's own
descriptive metadata may decide; otherwise the base id is returned and the evidence says so.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from . import _components, _models, _read, _unet
from ._table import Ctx, Names, Shape, Verdict, parts

__all__ = [
    "CANONICAL_IDS",
    "COMPONENT_IDS",
    "MODEL_IDS",
    "Detection",
    "detect",
    "detect_from_tensors",
]

MODEL_IDS = (
    "sd1",
    "sd2",
    "sdxl",
    "sdxl_refiner",
    "ssd1b",
    "sd1_tiny",
    "sdxs",
    "sd3",
    "sd3.5_large",
    "flux_dev",
    "flux_schnell",
    "flux_kontext",
    "chroma",
    "chroma_radiance",
    "flux2",
    "qwen_image",
    "qwen_image_edit",
    "z_image",
    "wan2.1_t2v",
    "wan2.1_i2v",
    "wan2.1_flf2v",
    "wan2.2_t2v",
    "wan2.2_i2v",
    "ltxv",
)
COMPONENT_IDS = (
    "vae",
    "taesd",
    "lora",
    "esrgan",
    "controlnet",
    "embedding",
    "clip_l",
    "clip_g",
    "t5xxl",
    "llm",
    "clip_vision",
    "photomaker",
)
CANONICAL_IDS = (*MODEL_IDS, *COMPONENT_IDS, "unknown")

_RULES = (
    *_components.ADAPTERS,
    *_models.FAMILIES,
    _unet.unet,
    *_components.ENCODERS,
)


@dataclass(frozen=True, slots=True)
class Detection:
    """What a model file is, decided from its header alone."""

    id: str  # one of CANONICAL_IDS
    name: str  # human name, e.g. "Stable Diffusion 1.x"
    role: str  # "checkpoint" | "diffusion_model" | "component"
    format: str  # "safetensors" | "gguf" | "ckpt"
    evidence: tuple[str, ...]  # the facts that decided it
    tensor_count: int
    dtypes: dict[str, int]  # dtype name (the format's own spelling) -> tensor count
    parameters: int | None  # None when some shape is unknown (pickles of foreign objects)
    metadata: dict[str, str]  # safetensors __metadata__ / GGUF general.* keys


def detect(path: str | os.PathLike[str]) -> Detection:
    """Detect the architecture of the model file at ``path`` from its header.

    Raises :class:`sdcpp.errors.ModelLoadError` for missing, unreadable, truncated or foreign
    files. A readable file whose tensors match no rule is returned with id ``"unknown"``.
    """
    table = _read.read(path)
    return _decide(table.shapes, table.format, table.metadata, table.dtypes, table)


def detect_from_tensors(
    shapes: Mapping[str, tuple[int, ...] | None],
    fmt: str = "safetensors",
    metadata: Mapping[str, str] | None = None,
) -> Detection:
    """Detect from a ``{tensor name: shape}`` table (PyTorch dimension order; None: unknown)."""
    table = {
        str(k): (tuple(int(x) for x in v) if v is not None else None) for k, v in shapes.items()
    }
    return _decide(table, fmt, dict(metadata or {}), Counter(), None)


def _decide(
    shapes: Mapping[str, Shape | None],
    fmt: str,
    metadata: Mapping[str, str],
    dtypes: Counter[str],
    table: _read.Table | None,
) -> Detection:
    names = Names(shapes)
    ctx = Ctx(names, fmt, metadata, table.containers if table else frozenset())
    verdict = _classify(ctx)
    evidence = list(table.evidence if table else ())
    role = verdict.role
    if role is None:
        found = parts(names)
        role = "checkpoint" if len(found) > 1 else "diffusion_model"
        evidence.append("contains: " + (" + ".join(found) or "diffusion model (no prefix)"))
    known = [s for s in shapes.values() if s is not None]
    parameters = sum(math.prod(s) for s in known) if len(known) == len(shapes) else None
    return Detection(
        id=verdict.id,
        name=verdict.name,
        role=role,
        format=fmt,
        evidence=(*verdict.evidence, *evidence),
        tensor_count=len(shapes),
        dtypes=dict(dtypes),
        parameters=parameters,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def _classify(ctx: Ctx) -> Verdict:
    for rule in _RULES:
        verdict = rule(ctx)
        if verdict is not None:
            return verdict
    # a file with prefixed diffusion weights is still a (foreign) model; anything else a part
    role = None if parts(ctx.full) else "component"
    return Verdict("unknown", "Unknown", (_components.names_summary(ctx.full),), role)
