"""Provide the stable-diffusion.cpp source tree the build compiles.

Run by CMakeLists.txt at configure time (see third_party/README.md). Prints one line on stdout:
the absolute path of an engine tree (the directory holding ``include/stable-diffusion.h``).

Order of precedence:
1. ``--source-dir`` (from the CMake/environment variable ``SDCPP_SOURCE_DIR``): used as it is;
2. a cached, already prepared tree under ``--cache-dir``;
3. the pinned source distribution, fetched with pip, sha256-verified, its
   ``vendor/stable-diffusion.cpp`` extracted and our patches applied, then moved into the cache
   in one rename so an interrupted build never leaves a half-prepared tree behind.

Standard library only: this runs inside pip's isolated build environment.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN = json.loads((HERE / "pin.json").read_text())
PATCH_DIR = HERE / "patches"
VENDOR_PREFIX = "vendor/stable-diffusion.cpp/"


class EngineSourceError(RuntimeError):
    pass


def patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def cache_key(upstream: bool = False) -> str:
    """The pin's hash plus the patches' contents: editing a patch gives a fresh tree.
    ``upstream``: the tree exactly as pinned, without our patches (the benchmarks' baseline)."""
    digest = hashlib.sha256(PIN["sha256"].encode())
    if upstream:
        return f"{PIN['version']}-upstream-{digest.hexdigest()[:12]}"
    for patch in patches():
        digest.update(patch.name.encode())
        digest.update(patch.read_bytes())
    return f"{PIN['version']}-{digest.hexdigest()[:12]}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sdist_only_flags() -> list[str]:
    """pip flags that fetch the pinned source distribution and never a wheel of it.

    pip prepares an sdist's metadata even for ``download``, with the distribution's build
    backend (scikit-build-core). Inside sdcpp's own build that backend is already installed, so
    pip uses it in place (``--no-build-isolation``; a fresh isolated environment under
    ``--no-binary :all:`` would compile cmake from source). Elsewhere (``python -m bench`` in an
    environment made by ``pip install .``) it is absent: then only the engine's distribution is
    held to source and pip brings its build backend as wheels into its own isolated environment.
    """
    if importlib.util.find_spec("scikit_build_core") is not None:
        return ["--no-binary", ":all:", "--no-build-isolation"]
    return ["--no-binary", PIN["distribution"]]


def download_sdist(dest: Path) -> Path:
    spec = f"{PIN['distribution']}=={PIN['version']}"
    cmd = [sys.executable, "-m", "pip", "download", *sdist_only_flags(), "--no-deps"]
    cmd += ["--disable-pip-version-check", "-d", str(dest), spec]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = sorted(dest.glob("*.tar.gz"))
    if result.returncode != 0 or not found:
        raise EngineSourceError(
            f"could not download {spec} with pip (exit {result.returncode}).\n"
            f"{result.stdout[-2000:]}\n"
            "Either give the build network access to the package index, or point "
            "SDCPP_SOURCE_DIR at a stable-diffusion.cpp checkout."
        )
    return found[0]


def extract_vendor_tree(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            _, _, rest = member.name.partition("/")  # drop the "<name>-<version>/" prefix
            if not rest.startswith(VENDOR_PREFIX) or not (member.isfile() or member.isdir()):
                continue
            member.name = rest[len(VENDOR_PREFIX) :] or "."
            members.append(member)
        if not members:
            raise EngineSourceError(f"{sdist.name} holds no {VENDOR_PREFIX} tree")
        # the "data" filter refuses links and paths that leave dest (Python >= 3.10.12)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)
    return dest


def apply_patch(tree: Path, patch: Path) -> None:
    """Apply a unified diff with exact context (no fuzz): a pin change must fail loudly."""
    lines = patch.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not lines[i].startswith("--- "):
            i += 1
            continue
        target = tree / lines[i + 1][4:].strip().split("/", 1)[1]
        text = target.read_text().splitlines(keepends=True)
        i += 2
        offset = 0
        while i < len(lines) and lines[i].startswith("@@"):
            _, old_range, new_range, *_ = lines[i].split()
            start, old_len = (int(n) for n in (old_range[1:] + ",1").split(",")[:2])
            new_len = int((new_range[1:] + ",1").split(",")[1])
            start -= 1
            i += 1
            old: list[str] = []
            new: list[str] = []
            while len(old) < old_len or len(new) < new_len:
                line = lines[i]
                tag, body = (line[0], line[1:]) if line != "\n" else (" ", "\n")
                if tag in (" ", "-"):
                    old.append(body)
                if tag in (" ", "+"):
                    new.append(body)
                i += 1
            at = start + offset
            if text[at : at + len(old)] != old:
                raise EngineSourceError(
                    f"{patch.name} does not apply to {target} at line {start + 1}"
                )
            text[at : at + len(old)] = new
            offset += len(new) - len(old)
        target.write_text("".join(text))


def prepare(cache_dir: Path, *, upstream: bool = False) -> Path:
    final = cache_dir / cache_key(upstream)
    if (final / "include" / "stable-diffusion.h").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".prepare-") as work:
        work_dir = Path(work)
        sdist = download_sdist(work_dir / "dl")
        actual = sha256_of(sdist)
        if actual != PIN["sha256"]:
            raise EngineSourceError(
                f"{sdist.name}: sha256 {actual} does not match the pin {PIN['sha256']}"
            )
        tree = extract_vendor_tree(sdist, work_dir / "tree")
        for patch in [] if upstream else patches():
            apply_patch(tree, patch)
        try:
            os.replace(tree, final)
        except OSError:
            if not (final / "include" / "stable-diffusion.h").is_file():
                raise
            # another build prepared the same tree at the same time: theirs is as good as ours
            shutil.rmtree(tree, ignore_errors=True)
    return final


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", default="")
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args()
    try:
        if args.source_dir:
            tree = Path(args.source_dir).expanduser().resolve()
            if not (tree / "include" / "stable-diffusion.h").is_file():
                raise EngineSourceError(
                    f"SDCPP_SOURCE_DIR={tree} has no include/stable-diffusion.h"
                )
        else:
            tree = prepare(Path(args.cache_dir).expanduser())
    except EngineSourceError as exc:
        print(f"sdcpp: {exc}", file=sys.stderr)
        return 1
    print(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
