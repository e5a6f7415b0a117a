"""Every Python enum value must be a name the compiled engine's str_to_* accepts."""

from __future__ import annotations

import pytest

from sdcpp import _native
from sdcpp.options import (
    HiresUpscaler,
    LoraApplyMode,
    Prediction,
    PreviewMode,
    RngType,
    SampleMethod,
    Scheduler,
    WeightType,
)

PAIRS = [
    (SampleMethod, _native.SampleMethod),
    (Scheduler, _native.Scheduler),
    (Prediction, _native.Prediction),
    (RngType, _native.RngType),
    (WeightType, _native.SdType),
    (PreviewMode, _native.Preview),
    (LoraApplyMode, _native.LoraApplyMode),
    (HiresUpscaler, _native.HiresUpscaler),
]


@pytest.mark.parametrize(("py_enum", "native_enum"), PAIRS)
def test_python_enum_matches_engine_names(py_enum: type, native_enum: type) -> None:
    for member in py_enum:  # type: ignore[attr-defined]
        native = native_enum.from_library_name(member.value)  # type: ignore[attr-defined]
        assert native.library_name == member.value


@pytest.mark.parametrize(("py_enum", "native_enum"), PAIRS[:4] + PAIRS[5:])
def test_every_engine_value_has_a_python_member(py_enum: type, native_enum: type) -> None:
    names = {m.value for m in py_enum}  # type: ignore[attr-defined]
    for name, value in native_enum.__members__.items():  # type: ignore[attr-defined]
        if name != "COUNT":
            assert value.library_name in names


def test_case_insensitive_lookup() -> None:
    assert SampleMethod("Euler_A") is SampleMethod.EULER_A
    assert WeightType("Q4_K") is WeightType.Q4_K
    with pytest.raises(ValueError):
        SampleMethod("nope")


def test_unknown_native_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown SampleMethod name"):
        _native.SampleMethod.from_library_name("bogus")
