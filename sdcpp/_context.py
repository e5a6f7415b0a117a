"""From ``StableDiffusion(...)`` keywords to the engine's context parameters.

Every keyword left ``None`` keeps the engine's default (sd_ctx_params_init); files are checked
(``check_model_file``) before the engine opens them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import _native
from ._files import check_model_file
from ._generation import native_enum
from .errors import InvalidArgument
from .options import LoraApplyMode, Prediction, RngType, WeightType

PathLike = str | os.PathLike[str]

# Constructor keyword -> native CtxParams path field.
MODEL_FILES = {
    "model": "model_path",
    "diffusion_model": "diffusion_model_path",
    "high_noise_diffusion_model": "high_noise_diffusion_model_path",
    "vae": "vae_path",
    "taesd": "taesd_path",
    "clip_l": "clip_l_path",
    "clip_g": "clip_g_path",
    "clip_vision": "clip_vision_path",
    "t5xxl": "t5xxl_path",
    "llm": "llm_path",
    "llm_vision": "llm_vision_path",
    "control_net": "control_net_path",
    "photo_maker": "photo_maker_path",
}
ENUM_SETTINGS: dict[str, tuple[type, Any]] = {
    "wtype": (WeightType, _native.SdType),
    "rng": (RngType, _native.RngType),
    "sampler_rng": (RngType, _native.RngType),
    "prediction": (Prediction, _native.Prediction),
    "lora_apply_mode": (LoraApplyMode, _native.LoraApplyMode),
}
NATIVE_NAMES = {"rng": "rng_type", "sampler_rng": "sampler_rng_type"}
PLAIN_SETTINGS = (
    "n_threads",
    "vae_decode_only",
    "offload_params_to_cpu",
    "enable_mmap",
    "keep_clip_on_cpu",
    "keep_control_net_on_cpu",
    "keep_vae_on_cpu",
    "flash_attn",
    "diffusion_flash_attn",
    "tae_preview_only",
    "diffusion_conv_direct",
    "vae_conv_direct",
    "circular_x",
    "circular_y",
    "force_sdxl_vae_conv_scale",
    "chroma_use_dit_mask",
    "chroma_use_t5_mask",
    "chroma_t5_mask_pad",
    "qwen_image_zero_cond_t",
    "max_vram",
)


def build_ctx_params(settings: Mapping[str, Any]) -> tuple[Any, dict[str, PathLike]]:
    """Native CtxParams for the constructor's keywords, and the model files given."""
    params = _native.CtxParams()
    files = {key: settings[key] for key in MODEL_FILES if settings[key] is not None}
    if "model" not in files and "diffusion_model" not in files:
        raise InvalidArgument("give model= (a full checkpoint) or diffusion_model=")
    for key, path in files.items():
        setattr(params, MODEL_FILES[key], str(check_model_file(path, key)))
    embeddings = {**embeddings_in(settings["embedding_dir"]), **(settings["embeddings"] or {})}
    if embeddings:
        params.embeddings = [
            (name, str(check_model_file(path, f"embedding {name}")))
            for name, path in embeddings.items()
        ]
    if settings["tensor_type_rules"]:
        params.tensor_type_rules = settings["tensor_type_rules"]
    if settings["n_threads"] is not None and settings["n_threads"] < 1:
        raise InvalidArgument("n_threads must be at least 1")
    for key in PLAIN_SETTINGS:
        if settings[key] is not None:
            setattr(params, key, settings[key])
    for key, (py_enum, native_type) in ENUM_SETTINGS.items():
        if settings[key] is not None:
            value = native_enum(settings[key], py_enum, native_type, key)
            setattr(params, NATIVE_NAMES.get(key, key), value)
    # The engine frees weights after the first generation by default; a second call on the
    # same context would then crash. A Python object is reused, so keep the weights.
    params.free_params_immediately = False
    return params, files


def embeddings_in(directory: PathLike | None) -> dict[str, PathLike]:
    """Textual-inversion files in ``directory``, by name (file stem), as prompts use them."""
    if directory is None:
        return {}
    if not os.path.isdir(directory):
        raise InvalidArgument(f"embedding_dir is not a directory: {directory}")
    found: dict[str, PathLike] = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        stem, ext = os.path.splitext(entry.name)
        if entry.is_file() and not entry.name.startswith(".") and ext.lower() in EMBEDDING_EXTS:
            found.setdefault(stem, entry.path)
    return found


EMBEDDING_EXTS = (".safetensors", ".pt", ".bin", ".gguf")
