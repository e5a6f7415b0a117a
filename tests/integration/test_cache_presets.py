"""Cache presets through the library and the CLI on a real (synthetic) UNet model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp.cli import main
from sdcpp.errors import InvalidArgument

OPTS = {"width": 64, "height": 64, "steps": 8, "seed": 3, "cfg_scale": 1.0}


def test_fast_preset_changes_the_run_and_is_deterministic(tiny: sdcpp.StableDiffusion) -> None:
    assert tiny.architecture == "sdxs"
    off = np.asarray(tiny.generate_arrays("a fox", **OPTS)[0])
    fast = np.asarray(tiny.generate_arrays("a fox", cache="fast", **OPTS)[0])
    again = np.asarray(tiny.generate_arrays("a fox", cache="fast", **OPTS)[0])
    assert not np.array_equal(off, fast)  # steps were really skipped
    assert np.array_equal(fast, again)


def test_dit_mode_on_a_unet_model_is_refused_before_native_code(
    tiny: sdcpp.StableDiffusion,
) -> None:
    with pytest.raises(InvalidArgument, match="ucache, spectrum"):
        tiny.generate_arrays("a fox", cache="easycache", **OPTS)


def test_cli_cache_flags(
    tiny_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.png"
    argv = ["generate", "-m", str(tiny_path), "-p", "x", "-W", "64", "-H", "64", "--steps", "4"]
    code = main(
        [*argv, "--cache-mode", "ucache", "--cache-option", "threshold=1.5", "-o", str(out)]
    )
    assert code == 0 and out.exists()
    assert main([*argv, "--cache-mode", "dbcache", "-o", str(out)]) != 0
    assert "ucache, spectrum" in capsys.readouterr().err
