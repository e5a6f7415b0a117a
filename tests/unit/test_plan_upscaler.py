"""Upscaler plans (``sdcpp.plan.upscaler_plan``): ESRGAN headers planned with their native
scale, anything else the detector knows refused naming what it is, and ``sdcpp.Upscaler``
deciding from the same plan before any native context is made.

Files are header-valid safetensors with ``test_detect``'s real tensor names and shapes (the
data section a sparse hole), so every plan starts from the real detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_detect import CASES, Table, esrgan
from test_detect import write_safetensors as _write

import sdcpp
from sdcpp import ModelLoadError
from sdcpp.plan import UPSCALE_TILE_SIZE, upscaler_plan


def write(tmp_path: Path, name: str, table: Table) -> Path:
    return _write(tmp_path / name, table)


def x2() -> Table:
    # Real-ESRGAN x2plus has one up-sampling conv: the detector reads the scale from that
    return {k: v for k, v in esrgan().items() if k != "conv_up2.weight"}


@pytest.mark.parametrize(
    ("table", "scale"),
    [(esrgan(), 4), (x2(), 2), (esrgan(old_layout=True), 4)],
    ids=["basicsr-x4", "basicsr-x2", "old-layout-x4"],
)
def test_an_esrgan_header_is_planned_with_its_scale(
    tmp_path: Path, table: Table, scale: int
) -> None:
    plan = upscaler_plan(write(tmp_path, "RealESRGAN.safetensors", table))
    assert (plan.architecture, plan.name, plan.scale) == ("esrgan", f"ESRGAN x{scale}", scale)
    assert plan.tile_size == UPSCALE_TILE_SIZE and plan.notes == ()


@pytest.mark.parametrize(
    ("case", "what"),
    [
        ("sd1", "Stable Diffusion 1.x (checkpoint)"),
        ("vae", "SD 1.x/2.x/XL VAE"),
        ("lora", "LoRA"),
    ],
)
def test_a_file_that_is_no_upscaler_is_refused_naming_what_it_is(
    tmp_path: Path, case: str, what: str
) -> None:
    path = write(tmp_path, "x.safetensors", CASES[case]())
    with pytest.raises(ModelLoadError) as err:
        upscaler_plan(path)
    assert str(err.value) == f"x.safetensors is {what}, not an ESRGAN upscaler"


def test_an_unrecognised_file_is_left_to_the_engine_with_a_note(tmp_path: Path) -> None:
    plan = upscaler_plan(write(tmp_path, "odd.pth", {"weight": (3, 3)}))
    assert plan.architecture == "unknown" and plan.scale is None
    assert len(plan.notes) == 1 and "the engine will try it" in plan.notes[0]


def test_a_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        upscaler_plan(tmp_path / "none.safetensors")


def test_the_view_fills_the_factor_from_the_native_scale_only_when_none_was_asked(
    tmp_path: Path,
) -> None:
    plan = upscaler_plan(write(tmp_path, "RealESRGAN_x4.safetensors", esrgan()))
    view = plan.view(None)
    assert view == {
        "architecture": "esrgan",
        "name": "ESRGAN x4",
        "model": "RealESRGAN_x4.safetensors",
        "scale": 4,
        "context": {"tile_size": UPSCALE_TILE_SIZE},
        "defaults": {"factor": 4},
        "notes": [],
    }
    assert plan.view(2)["defaults"] == {}


class _FakeContext:
    """Stands in for the native upscaler: records what it was built with."""

    made: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, *args: Any) -> None:
        type(self).made.append(args)
        self.factor = 4

    def close(self) -> None:
        pass


@pytest.fixture
def fake_native(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    _FakeContext.made = []
    monkeypatch.setattr(sdcpp.upscaler._native, "UpscalerContext", _FakeContext)
    return _FakeContext.made


def test_the_library_upscaler_runs_with_the_plan(
    tmp_path: Path, fake_native: list[tuple[Any, ...]]
) -> None:
    path = write(tmp_path, "RealESRGAN_x4.safetensors", esrgan())
    with sdcpp.Upscaler(path, n_threads=1) as up:
        assert up.plan == upscaler_plan(path)
    (args,) = fake_native
    assert args[-1] == UPSCALE_TILE_SIZE  # the plan's tile size when none is given
    with sdcpp.Upscaler(path, n_threads=1, tile_size=64):
        pass
    assert fake_native[-1][-1] == 64  # an explicit one wins


def test_the_library_upscaler_refuses_a_checkpoint_before_loading(
    tmp_path: Path, fake_native: list[tuple[Any, ...]]
) -> None:
    path = write(tmp_path, "sd15.safetensors", CASES["sd1"]())
    with pytest.raises(ModelLoadError, match=r"sd15\.safetensors is Stable Diffusion 1\.x"):
        sdcpp.Upscaler(path)
    assert fake_native == []  # no native context was asked for
