"""Step-cache presets: the family table follows the engine's rules, refusals name what fits."""

from __future__ import annotations

import pytest

from sdcpp import cache_presets
from sdcpp.cache_presets import CacheFamily, family_of, parse_cli_options, resolve
from sdcpp.errors import InvalidArgument
from sdcpp.options import CacheMode, CacheOptions

# Every key of sdcpp.plan's architecture table, with the family the engine treats it as
# (sample-cache.cpp: sd_version_is_unet / sd_version_is_dit).
FAMILIES = {
    "sd1": "unet", "sd1_tiny": "unet", "sd2": "unet", "sdxl": "unet", "sdxl_refiner": "unet",
    "ssd1b": "unet", "sdxs": "unet", "sd3": "dit", "sd3.5_large": "dit", "flux_dev": "dit",
    "flux_schnell": "dit", "flux_kontext": "dit", "chroma": "dit", "chroma_radiance": "dit",
    "flux2": "dit", "flux2_klein_4b": "dit", "qwen_image": "dit", "qwen_image_edit": "dit",
    "z_image": "dit", "wan2.1_t2v": "video", "wan2.2_i2v": "video", "ltxv": "none",
    None: "none", "unknown": "none",
}  # fmt: skip


@pytest.mark.parametrize(("arch", "family"), FAMILIES.items())
def test_family_of_every_planned_architecture(arch: str | None, family: str) -> None:
    assert family_of(arch) == CacheFamily(family)


def test_every_plan_table_key_has_a_family_here() -> None:
    from sdcpp.plan._table import ARCHITECTURES

    # LTX-Video is the one planned architecture the engine's step caches do not cover.
    uncached = {key for key in ARCHITECTURES if family_of(key) is CacheFamily.NONE}
    assert uncached == {"ltxv"}
    for key, family in FAMILIES.items():
        if key in ARCHITECTURES:
            assert family_of(key) == CacheFamily(family)


def test_presets_resolve_to_modes_their_family_allows() -> None:
    for family, presets in cache_presets.PRESETS.items():
        for options in presets.values():
            assert CacheMode(options.mode) in cache_presets.MODES[family]


@pytest.mark.parametrize("off", [None, "off", "OFF", "none", "disabled"])
def test_off_means_no_cache(off: str | None) -> None:
    assert resolve(off, "sd1") is None
    assert resolve(CacheOptions(mode=CacheMode.DISABLED), "flux_dev") is None


def test_fast_differs_per_family() -> None:
    unet, dit = resolve("fast", "sd1"), resolve("fast", "flux_dev")
    assert unet is not None and unet.mode is CacheMode.UCACHE
    assert dit is not None and CacheMode(dit.mode) in cache_presets.MODES[CacheFamily.DIT]


def test_a_mode_the_architecture_cannot_use_is_refused_with_the_list() -> None:
    with pytest.raises(InvalidArgument, match=r"easycache.*sd1.*unet.*ucache, spectrum"):
        resolve("easycache", "sd1")
    with pytest.raises(InvalidArgument, match=r"ucache.*flux_dev.*easycache, dbcache"):
        resolve(CacheOptions(mode="ucache"), "flux_dev")
    with pytest.raises(InvalidArgument, match="it can use: none"):
        resolve("spectrum", "ltxv")


def test_an_unknown_name_lists_presets_and_modes() -> None:
    with pytest.raises(InvalidArgument, match=r"presets off, balanced, fast; modes ucache"):
        resolve("turbo", "sdxl")


def test_raw_options_pass_through_when_allowed() -> None:
    raw = CacheOptions(mode=CacheMode.SPECTRUM, settings={"spectrum_w": 0.5})
    assert resolve(raw, "sdxl") is raw


def test_sd_cli_cache_option_keys() -> None:
    settings = parse_cli_options("threshold=0.25, start=0.1,reset=0,Fn=4,warmup=3")
    assert settings == {
        "reuse_threshold": 0.25,
        "residual_diff_threshold": 0.25,
        "start_percent": 0.1,
        "reset_error_on_compute": False,
        "Fn_compute_blocks": 4,
        "spectrum_warmup_steps": 3,
        "max_warmup_steps": 3,
    }
    with pytest.raises(InvalidArgument, match="key=value"):
        parse_cli_options("speed=11")
    with pytest.raises(InvalidArgument, match="not a number"):
        parse_cli_options("threshold=high")


def test_available_is_what_parameters_show() -> None:
    info = cache_presets.available("flux_dev")
    assert info["family"] == "dit" and info["suggested"] == "off"
    assert info["presets"] == ["off", "balanced", "fast"] and "cache-dit" in info["modes"]
