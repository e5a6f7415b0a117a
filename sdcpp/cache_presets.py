"""Step-cache presets: named, measured settings of the engine's step caches per model family.

The pinned engine can skip or extrapolate some denoising steps (``sd_cache_params_t``). Which
caches apply depends on the denoiser's shape, exactly as ``src/sample-cache.cpp`` decides:

- UNet models (SD 1.x, SD 2.x, SDXL and their distillations): ``ucache``, ``spectrum``;
- DiT / flow models (SD3, FLUX.1/2, Chroma, Qwen-Image, Z-Image) and Wan video:
  ``easycache``, ``dbcache``, ``taylorseer``, ``cache-dit``, ``spectrum``;
- anything else (LTX-Video, unknown files): none.

The engine only logs a warning and runs uncached when a mode does not fit the model, so a
request for one is refused here, before anything reaches native code, with the list that fits.

Presets are ``off`` (the default everywhere), ``balanced`` and ``fast``; their settings come
from ``python -m bench.cache`` (speed-up and PSNR against ``off`` on the synthetic models,
README "Step caching"). A raw :class:`CacheOptions` (mode + engine settings) is for experts and
is checked against the same family table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .errors import InvalidArgument
from .options import CacheMode, CacheOptions


class CacheFamily(StrEnum):
    """How a model's denoiser is built, as far as the step caches care."""

    UNET = "unet"
    DIT = "dit"
    VIDEO = "video"  # Wan: a DiT, with presets of its own (many more steps, frames)
    NONE = "none"


PRESET_NAMES = ("off", "balanced", "fast")

MODES: Mapping[CacheFamily, tuple[CacheMode, ...]] = MappingProxyType(
    {
        CacheFamily.UNET: (CacheMode.UCACHE, CacheMode.SPECTRUM),
        CacheFamily.DIT: (
            CacheMode.EASYCACHE,
            CacheMode.DBCACHE,
            CacheMode.TAYLORSEER,
            CacheMode.CACHE_DIT,
            CacheMode.SPECTRUM,
        ),
        CacheFamily.VIDEO: (
            CacheMode.EASYCACHE,
            CacheMode.DBCACHE,
            CacheMode.TAYLORSEER,
            CacheMode.CACHE_DIT,
            CacheMode.SPECTRUM,
        ),
        CacheFamily.NONE: (),
    }
)

# Detection ids (sdcpp.detect / sdcpp.plan's table keys) by family; prefixes cover variants.
_UNET_IDS = ("sd1", "sd2", "sdxl", "ssd1b", "sdxs", "segmind", "vega", "koala")
_DIT_IDS = ("sd3", "flux", "chroma", "qwen_image", "z_image", "anima", "ernie")
_VIDEO_IDS = ("wan",)

# The preset table. Settings are native CacheParams field names (sdcpp.options.CacheOptions);
# the values were chosen from bench/cache.py's rows (bench/RESULTS.md), see the README.
PRESETS: Mapping[CacheFamily, Mapping[str, CacheOptions]] = MappingProxyType(
    {
        CacheFamily.UNET: MappingProxyType(
            {
                "balanced": CacheOptions(mode=CacheMode.UCACHE, settings={"reuse_threshold": 0.5}),
                "fast": CacheOptions(mode=CacheMode.UCACHE, settings={"reuse_threshold": 1.0}),
            }
        ),
        CacheFamily.DIT: MappingProxyType(
            {
                "balanced": CacheOptions(
                    mode=CacheMode.EASYCACHE, settings={"reuse_threshold": 0.2}
                ),
                "fast": CacheOptions(mode=CacheMode.CACHE_DIT, settings={}),
            }
        ),
        CacheFamily.VIDEO: MappingProxyType(
            {
                "balanced": CacheOptions(
                    mode=CacheMode.EASYCACHE, settings={"reuse_threshold": 0.1}
                ),
                "fast": CacheOptions(mode=CacheMode.EASYCACHE, settings={"reuse_threshold": 0.2}),
            }
        ),
        CacheFamily.NONE: MappingProxyType({}),
    }
)


# One detection id per family, for listing what each family can use (/api/parameters).
FAMILY_EXAMPLES: Mapping[CacheFamily, str] = MappingProxyType(
    {
        CacheFamily.UNET: _UNET_IDS[0],
        CacheFamily.DIT: _DIT_IDS[0],
        CacheFamily.VIDEO: _VIDEO_IDS[0],
        CacheFamily.NONE: "",
    }
)


def family_of(architecture: str | None) -> CacheFamily:
    """The cache family of a detection id (``"sd1"``, ``"flux_dev"``, ``"wan2.2_t2v"``...)."""
    arch = (architecture or "").lower()
    if arch.startswith(_VIDEO_IDS):
        return CacheFamily.VIDEO
    if arch.startswith(_DIT_IDS):
        return CacheFamily.DIT
    if arch.startswith(_UNET_IDS):
        return CacheFamily.UNET
    return CacheFamily.NONE


def suggested_preset(architecture: str | None) -> str:
    """The preset the architecture plan suggests. ``off`` until the figures say otherwise:
    on the synthetic models no preset reaches the "fast" goal at the PSNR bound (README)."""
    del architecture  # one answer for every family today; the signature is the contract
    return "off"


def available(architecture: str | None) -> dict[str, Any]:
    """What a client may ask for on this architecture (for /api/parameters and errors)."""
    family = family_of(architecture)
    return {
        "family": family.value,
        "presets": ["off", *PRESETS[family]],
        "modes": [m.value for m in MODES[family]],
        "suggested": suggested_preset(architecture),
    }


def resolve(cache: str | CacheOptions | None, architecture: str | None) -> CacheOptions | None:
    """Turn a preset name or raw options into engine options for this architecture.

    ``None``, ``"off"`` and mode ``disabled`` mean no cache (``None``). Raises
    InvalidArgument for an unknown preset or a mode the architecture cannot use, naming what
    it can use.
    """
    family = family_of(architecture)
    if cache is None:
        return None
    if isinstance(cache, str):
        name = cache.strip().lower()
        if name in ("off", "none", "disabled", ""):
            return None
        if name in PRESETS[family]:
            return PRESETS[family][name]
        try:
            mode = CacheMode(name)  # a bare mode name: that mode with the engine's defaults
        except ValueError:
            raise InvalidArgument(_unknown(name, family, architecture)) from None
        cache = CacheOptions(mode=mode)
    try:
        mode = CacheMode(cache.mode)
    except ValueError:
        raise InvalidArgument(_unknown(str(cache.mode), family, architecture)) from None
    if mode is CacheMode.DISABLED:
        return None
    if mode not in MODES[family]:
        allowed = ", ".join(m.value for m in MODES[family]) or "none"
        raise InvalidArgument(
            f"cache mode {mode.value!r} does not apply to {architecture or 'this model'} "
            f"({family.value} family); it can use: {allowed}"
        )
    return cache


def _unknown(name: str, family: CacheFamily, architecture: str | None) -> str:
    presets = ", ".join(["off", *PRESETS[family]])
    modes = ", ".join(m.value for m in MODES[family]) or "none"
    return (
        f"unknown cache setting {name!r} for {architecture or 'this model'}: "
        f"presets {presets}; modes {modes}"
    )


# sd-cli's --cache-option keys (examples/common/common.cpp) -> CacheParams fields. "threshold"
# and "warmup" set two fields there as well, one per cache kind; so they do here.
_CLI_KEYS: Mapping[str, tuple[tuple[str, type], ...]] = MappingProxyType(
    {
        "threshold": (("reuse_threshold", float), ("residual_diff_threshold", float)),
        "start": (("start_percent", float),),
        "end": (("end_percent", float),),
        "decay": (("error_decay_rate", float),),
        "relative": (("use_relative_threshold", bool),),
        "reset": (("reset_error_on_compute", bool),),
        "fn": (("Fn_compute_blocks", int),),
        "bn": (("Bn_compute_blocks", int),),
        "warmup": (("spectrum_warmup_steps", int), ("max_warmup_steps", int)),
        "w": (("spectrum_w", float),),
        "m": (("spectrum_m", int),),
        "lam": (("spectrum_lam", float),),
        "window": (("spectrum_window_size", int),),
        "flex": (("spectrum_flex_window", float),),
        "stop": (("spectrum_stop_percent", float),),
    }
)


def parse_cli_options(text: str) -> dict[str, Any]:
    """sd-cli's ``--cache-option "threshold=0.25,start=0.1"`` as CacheParams settings."""
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        fields = _CLI_KEYS.get(key.strip().lower())
        if not sep or fields is None:
            raise InvalidArgument(
                f"--cache-option: {item!r} is not key=value with a key of: {', '.join(_CLI_KEYS)}"
            )
        for name, kind in fields:
            try:
                number = float(value)
            except ValueError:
                raise InvalidArgument(f"--cache-option {key}: {value!r} is not a number") from None
            settings[name] = number != 0 if kind is bool else kind(number)
    return settings
