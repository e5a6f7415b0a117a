from __future__ import annotations

import sdcpp


def test_all_exports_exist() -> None:
    for name in sdcpp.__all__:
        assert hasattr(sdcpp, name), name


def test_all_is_sorted_and_unique() -> None:
    assert len(set(sdcpp.__all__)) == len(sdcpp.__all__)
    assert list(sdcpp.__all__) == sorted(sdcpp.__all__)


def test_all_names_every_public_member() -> None:
    # A public name defined in sdcpp but missing from __all__ is invisible to star-imports/docs.
    public = {n for n, v in vars(sdcpp).items() if not n.startswith("_") and not _is_module(v)} - {
        "annotations",
        "Any",
    }
    assert public <= set(sdcpp.__all__)


def _is_module(value: object) -> bool:
    import types

    return isinstance(value, types.ModuleType)


def test_version_and_engine_identity() -> None:
    assert sdcpp.__version__ == "0.1.0"
    # the pinned sdist has no git metadata: the build reports the pin instead of "unknown"
    assert sdcpp.engine_version() == "stable-diffusion-cpp-python-0.4.7"
    assert sdcpp.engine_commit().startswith("sdist-sha256-998d1957260d")
    assert "AVX" in sdcpp.system_info() or "NEON" in sdcpp.system_info()
    assert sdcpp.num_physical_cores() >= 1
