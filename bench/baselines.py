"""Baselines built from the same pinned engine source and flags as sdcpp itself, without our
patches (third_party/patches): upstream's sd-cli and sd-server exactly as pinned."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "third_party"))


def engine_dir() -> Path:
    """The pinned engine tree without our patches, fetched and verified if needed."""
    import engine_source  # third_party/engine_source.py

    cache = Path(os.environ.get("SDCPP_CACHE_DIR", Path.home() / ".cache" / "sdcpp" / "engine"))
    return engine_source.prepare(cache, upstream=True)


def backend_flags() -> list[str]:
    """``CMAKE_ARGS``, the variable scikit-build-core builds sdcpp with (e.g. ``-DSD_CUDA=ON``):
    the baselines get the same backend as the sdcpp they are compared with."""
    return shlex.split(os.environ.get("CMAKE_ARGS", ""))


def default_build_dir() -> Path:
    flags = " ".join(backend_flags())
    suffix = "-" + hashlib.sha256(flags.encode()).hexdigest()[:8] if flags else ""
    return ROOT / "build" / f"upstream{suffix}"


def build_sd_cli(build_dir: Path | None = None) -> Path:
    """Build upstream sd-cli (and nothing else) with the flags the extension uses."""
    return _build_target("sd-cli", build_dir)


def build_sd_server(build_dir: Path | None = None) -> Path:
    """Build upstream's HTTP server example, sd-server, from the same tree and flags.

    It shares sd-cli's build directory: one configure, one compiled engine library.
    """
    return _build_target("sd-server", build_dir)


class BaselineToolsMissing(SystemExit):
    """The baselines need build tools that ``pip install .`` does not leave behind."""


def require_build_tools() -> None:
    """Name everything the upstream baselines need in one message, before any of it is used."""
    missing = [tool for tool in ("cmake", "ninja") if shutil.which(tool) is None]
    if shutil.which("c++") is None:
        missing.append("a C++ compiler (c++)")
    if missing:
        raise BaselineToolsMissing(
            "python -m bench compares sdcpp with upstream's sd-cli and sd-server, built here from "
            f"the pinned engine source, and this environment lacks: {', '.join(missing)}. "
            "`pip install cmake ninja` brings the first two; a compiler comes from the system "
            "(`apt install g++`)."
        )


def _build_target(target: str, build_dir: Path | None) -> Path:
    require_build_tools()
    build_dir = build_dir or default_build_dir()
    binary = build_dir / "bin" / target
    env = {**os.environ, "CCACHE_BASEDIR": str(ROOT), "CCACHE_NOHASHDIR": "1"}
    if not (build_dir / "build.ninja").exists():
        subprocess.run(
            [
                "cmake",
                "-S",
                str(engine_dir()),
                "-B",
                str(build_dir),
                "-G",
                "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DSD_WEBP=OFF",
                "-DSD_WEBM=OFF",
                "-DSD_BUILD_EXAMPLES=ON",
                "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
                *backend_flags(),
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    subprocess.run(
        ["cmake", "--build", str(build_dir), "--target", target],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return binary
