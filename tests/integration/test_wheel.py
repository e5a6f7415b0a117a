"""The built wheel holds ``sdcpp/`` (extension, Python package, type information, web UI) and
its dist-info, nothing else: no engine static libraries, headers or CMake configs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The backend already here builds in place, reusing build/ (seconds with ccache); a laptop
    # without it lets pip fetch it into an isolated environment.
    in_place = all(importlib.util.find_spec(m) for m in ("scikit_build_core", "pybind11"))
    isolation = ["--no-build-isolation"] if in_place else []
    env = {**os.environ, "CCACHE_BASEDIR": str(ROOT), "CCACHE_NOHASHDIR": "1"}
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(out)]
    done = subprocess.run(
        [*command, str(ROOT)], capture_output=True, text=True, env=env, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (found,) = out.glob("sdcpp-*.whl")
    print(f"\nwheel: {found.name}, {found.stat().st_size / 2**20:.1f} MiB")
    return found


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_only_the_package_and_its_dist_info(wheel: Path) -> None:
    outside = [
        name
        for name in names(wheel)
        if not name.startswith("sdcpp/") and not name.split("/")[0].endswith(".dist-info")
    ]
    assert outside == [], f"files outside sdcpp/ in the wheel: {outside[:20]}"
    engine_build = [n for n in names(wheel) if n.endswith((".a", ".h", ".cmake"))]
    assert engine_build == [], engine_build


def test_wheel_holds_extension_types_and_web_ui(wheel: Path) -> None:
    inside = set(names(wheel))
    assert any(n.startswith("sdcpp/_native.") and n.endswith((".so", ".pyd")) for n in inside)
    for needed in (
        "sdcpp/py.typed",
        "sdcpp/_native.pyi",
        "sdcpp/__init__.py",
        "sdcpp/cli/__init__.py",
    ):
        assert needed in inside, needed
    ui = {n.removeprefix("sdcpp/webui/") for n in inside if n.startswith("sdcpp/webui/")}
    shipped = {
        str(p.relative_to(ROOT / "webui")) for p in (ROOT / "webui").rglob("*") if p.is_file()
    }
    assert "index.html" in ui
    assert ui == shipped, f"missing from the wheel: {sorted(shipped - ui)[:10]}"
    assert not any("__pycache__" in n for n in inside)
