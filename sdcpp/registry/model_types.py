"""Model types: seed 002's names and bit values, their folders and file extensions.

Seed 002 ("Model Types and File Extensions") defines eleven types, LORA = 1 ... EMBEDDING = 1024,
as bit flags so a filter can combine them (``ModelType.LORA | ModelType.VAE``). Those values are
kept exactly. The data-dir layout (ARCHITECTURE.md "Data on disk") also has ``diffusion_models``,
``text_encoders`` and ``photomaker`` folders, which the seed has no type for; they get the next
free bits (2048, 4096, 8192) so no seed value moves.

Extensions: each type accepts the seed's list first, then what the engine also loads for that
role (it recognises files by content: safetensors, GGUF, PyTorch zip). The seed's own examples
use ``.gguf`` diffusion models and text encoders and an ``ae.sft`` VAE, which its table omits.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

# The weights formats the engine opens; ".sft" is the short safetensors name some releases use.
_WEIGHTS = (".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pth", ".bin")


class ModelType(enum.IntFlag):
    LORA = 1
    CHECKPOINT = 2
    VAE = 4
    PRESETS = 8
    PROMPTS = 16
    NEG_PROMPTS = 32
    TAESD = 64
    ESRGAN = 128
    CONTROLNET = 256
    UPSCALER = 512
    EMBEDDING = 1024
    # Not in seed 002: folders of the data-dir layout that need a type of their own.
    DIFFUSION_MODEL = 2048
    TEXT_ENCODER = 4096
    PHOTOMAKER = 8192

    @property
    def info(self) -> TypeInfo:
        return TYPE_INFO[self]

    @property
    def slug(self) -> str:
        """Lower-case name used in JSON and query strings (``"lora"``)."""
        return (self.name or str(int(self))).lower()

    @property
    def folders(self) -> tuple[str, ...]:
        return self.info.folders

    @property
    def extensions(self) -> tuple[str, ...]:
        return self.info.extensions

    @property
    def is_text(self) -> bool:
        """Presets and prompt templates: text files with no architecture to detect."""
        return bool(self & TEXT_TYPES)

    @classmethod
    def parse(cls, value: ModelType | int | str) -> ModelType:
        """Accept a member, its value, its name or slug, or one of its folder names.

        ``"lora"``, ``"LORA"``, ``"loras"`` and ``"lora,vae"`` (a union) are all understood, so
        a query string can be passed straight through.
        """
        if isinstance(value, ModelType):
            return value
        if isinstance(value, int):
            return cls(value)
        result = cls(0)
        for part in re.split(r"[,|\s]+", value.strip()):
            if part:
                result |= _parse_one(part)
        if not result:
            raise ValueError(f"no model type given in {value!r}")
        return result


@dataclass(frozen=True, slots=True)
class TypeInfo:
    description: str
    folders: tuple[str, ...]  # the first one is canonical (created by ensure_layout)
    extensions: tuple[str, ...]
    subfolders: tuple[str, ...] = ()  # created inside the canonical folder


def _weights(*seed: str) -> tuple[str, ...]:
    """The seed's extensions first, then the other weight formats the engine loads."""
    return seed + tuple(ext for ext in _WEIGHTS if ext not in seed)


_SEED_WEIGHTS = (".safetensors", ".pt", ".ckpt")
_SEED_UPSCALER = (".pth", ".pt")

TYPE_INFO: dict[ModelType, TypeInfo] = {
    ModelType.LORA: TypeInfo(
        "Low-Rank Adaptation models", ("loras", "lora", "Lora"), _weights(*_SEED_WEIGHTS)
    ),
    ModelType.CHECKPOINT: TypeInfo(
        "Main model checkpoints", ("checkpoints", "Stable-diffusion"), _weights(*_SEED_WEIGHTS)
    ),
    ModelType.VAE: TypeInfo(
        "Variational Autoencoder models", ("vae", "VAE"), _weights(*_SEED_WEIGHTS)
    ),
    ModelType.PRESETS: TypeInfo(
        "Generation preset files", ("presets",), (".json", ".yaml", ".yml")
    ),
    ModelType.PROMPTS: TypeInfo("Prompt template files", ("prompts",), (".txt", ".json")),
    ModelType.NEG_PROMPTS: TypeInfo(
        "Negative prompt templates", ("neg_prompts",), (".txt", ".json")
    ),
    ModelType.TAESD: TypeInfo("Tiny AutoEncoder for SD", ("taesd",), _weights(*_SEED_WEIGHTS)),
    ModelType.ESRGAN: TypeInfo(
        "Super-resolution models", ("esrgan", "upscale_models", "ESRGAN"), _weights(*_SEED_UPSCALER)
    ),
    ModelType.CONTROLNET: TypeInfo(
        "ControlNet models", ("controlnet", "ControlNet"), _weights(*_SEED_WEIGHTS)
    ),
    ModelType.UPSCALER: TypeInfo("Image upscaler models", ("upscaler",), _weights(*_SEED_UPSCALER)),
    ModelType.EMBEDDING: TypeInfo("Textual embeddings", ("embeddings",), _weights(*_SEED_WEIGHTS)),
    ModelType.DIFFUSION_MODEL: TypeInfo(
        "Diffusion models without their text encoders and VAE (Flux, SD3.5, Wan, ...)",
        ("diffusion_models", "unet"),
        _weights(),
    ),
    ModelType.TEXT_ENCODER: TypeInfo(
        "Text encoders (CLIP-L, CLIP-G, T5-XXL, LLM)",
        ("text_encoders", "clip"),
        _weights(),
        subfolders=("clip_l", "clip_g", "t5xxl", "llm"),
    ),
    ModelType.PHOTOMAKER: TypeInfo("PhotoMaker models", ("photomaker",), _weights()),
}

TEXT_TYPES = ModelType.PRESETS | ModelType.PROMPTS | ModelType.NEG_PROMPTS

# Every extension any type accepts: a root-level file with another extension is not a model.
WEIGHT_EXTENSIONS = frozenset(_WEIGHTS)


def _parse_one(part: str) -> ModelType:
    folded = part.casefold()
    for member, info in TYPE_INFO.items():
        names = {member.slug, *(folder.casefold() for folder in info.folders)}
        if folded in names:
            return member
    if part.isdigit():
        return ModelType(int(part))
    raise ValueError(f"unknown model type {part!r}")


# Detection role / id -> type, for files lying directly in the models root. Keys are normalised
# (lower case, '-' and ' ' as '_') so small spelling differences in the detector don't matter.
_DETECTED: dict[str, ModelType] = {
    **dict.fromkeys(("checkpoint", "full", "full_model", "model"), ModelType.CHECKPOINT),
    **dict.fromkeys(
        ("diffusion_model", "diffusion", "unet", "dit", "transformer"), ModelType.DIFFUSION_MODEL
    ),
    "vae": ModelType.VAE,
    **dict.fromkeys(("taesd", "tae", "tiny_vae"), ModelType.TAESD),
    **dict.fromkeys(("lora", "lycoris", "locon", "loha", "lokr"), ModelType.LORA),
    **dict.fromkeys(("esrgan", "upscaler", "upscale_model"), ModelType.ESRGAN),
    **dict.fromkeys(("controlnet", "control_net"), ModelType.CONTROLNET),
    **dict.fromkeys(("embedding", "textual_inversion"), ModelType.EMBEDDING),
    "photomaker": ModelType.PHOTOMAKER,
    **dict.fromkeys(
        ("text_encoder", "clip_l", "clip_g", "t5xxl", "umt5", "llm", "clip_vision"),
        ModelType.TEXT_ENCODER,
    ),
}


def _norm(value: object) -> str:
    return re.sub(r"[\s-]+", "_", str(value).strip().lower()) if value is not None else ""


def type_from_detection(detection: Any) -> ModelType:
    """Type of a root-level weights file from its detection (``role`` first, then ``id``).

    Anything recognised as an architecture but not as a component, and anything not recognised
    at all, is a CHECKPOINT: seed 002's fallback ("unknown architectures default to traditional
    loading", i.e. ``model_path``).
    """
    for attr in ("role", "id"):
        found = _DETECTED.get(_norm(getattr(detection, attr, None)))
        if found is not None:
            return found
    return ModelType.CHECKPOINT
