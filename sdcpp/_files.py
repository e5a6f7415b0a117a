"""Cheap checks of model files before the engine opens them.

The engine reads tensor data at offsets its header promises; a truncated or foreign file must be
refused here with a clear message instead of reaching native code (where a failed assert would
end the process).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from . import _safetensors
from .errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
ZIP_MAGIC = b"PK\x03\x04"


def check_model_file(path: str | os.PathLike[str], role: str = "model") -> Path:
    """Return the resolved path, or raise ModelLoadError saying what is wrong with it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"{role} file not found: {p}")
    if not p.is_file():
        raise ModelLoadError(f"{role} path is not a file: {p}")
    size = p.stat().st_size
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelLoadError(f"{role} file cannot be read: {p}: {exc}") from exc
    if head[:4] == GGUF_MAGIC:
        _check_gguf_head(p, head, size, role)
    elif head[:4] == ZIP_MAGIC:
        pass  # a PyTorch zip checkpoint: the engine reads its entries by name
    elif p.suffix.lower() == ".safetensors" or _looks_like_safetensors(head, size):
        _check_safetensors(p, size, role)
    else:
        raise ModelLoadError(f"{role} file is not a safetensors, GGUF or checkpoint file: {p}")
    return p.resolve()


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 8:
        return False
    length: int = struct.unpack("<Q", head)[0]
    return 2 <= length <= min(size - 8, _safetensors.MAX_HEADER_BYTES)


def _check_safetensors(p: Path, size: int, role: str) -> None:
    try:
        header, data_start = _safetensors.read_header(p)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{role} file has a broken safetensors header: {exc}") from exc
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            dtype = _safetensors.DTYPES.get(info["dtype"])
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{role} file: malformed entry for tensor {name!r}") from exc
        if dtype is not None and stop - begin != count * dtype.itemsize:
            raise ModelLoadError(f"{role} file: tensor {name!r} has inconsistent size")
        if not 0 <= begin <= stop:
            raise ModelLoadError(f"{role} file: tensor {name!r} has invalid offsets")
        end = max(end, stop)
    if data_start + end > size:
        raise ModelLoadError(
            f"{role} file is truncated: {p} is {size} bytes, its header needs {data_start + end}"
        )


def _check_gguf_head(p: Path, head: bytes, size: int, role: str) -> None:
    if len(head) < 8:
        raise ModelLoadError(f"{role} file is truncated: {p}")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise ModelLoadError(f"{role} file has unsupported GGUF version {version}: {p}")
    from .gguf import GGUFError, read_gguf  # local: only GGUF files need the reader

    try:
        info = read_gguf(p, keep_arrays=False)  # arrays are not needed to check sizes
    except GGUFError as exc:
        raise ModelLoadError(f"{role} file: {exc}") from exc
    if info.data_end > size:
        raise ModelLoadError(
            f"{role} file is truncated: {p} is {size} bytes, its header needs {info.data_end}"
        )
