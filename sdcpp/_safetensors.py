"""Minimal safetensors reading and writing with numpy only.

Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
header mapping tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the end of the header) plus an optional ``"__metadata__"`` of strings, then the raw
little-endian tensor bytes.

Writers are atomic (temp file in the same directory, fsync, rename) and stream tensor by tensor,
so a 2 GB checkpoint never needs 2 GB of extra memory.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}

# Largest header we agree to parse: real checkpoints stay far below this; a corrupt length field
# must not make us allocate gigabytes.
MAX_HEADER_BYTES = 100 * 1024 * 1024

TensorSource = Callable[[], np.ndarray]


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], int]:
    """Return (header dict, offset of the data section). Reads only the header."""
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (length,) = struct.unpack("<Q", raw_len)
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: safetensors header length {length} is implausible")
        raw = f.read(length)
    if len(raw) != length:
        raise ValueError(f"{path}: truncated safetensors header")
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + length


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every tensor (memory-mapped, read-only)."""
    header, data_start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        out[name] = mm[data_start + begin : data_start + end].view(dtype).reshape(info["shape"])
    return out


def save(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray | TensorSource],
    shapes: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` atomically.

    A value may be an array, or a zero-argument callable producing one (then ``shapes`` must give
    its shape and dtype up front, so the header can be written before any data is made).
    """
    entries: list[tuple[str, tuple[int, ...], np.dtype[Any]]] = []
    for name, value in tensors.items():
        if callable(value):
            if shapes is None or name not in shapes:
                raise ValueError(f"{name}: a lazy tensor needs its shape and dtype in shapes")
            shape, dtype = shapes[name]
        else:
            shape, dtype = tuple(value.shape), value.dtype
        entries.append((name, tuple(int(d) for d in shape), np.dtype(dtype).newbyteorder("<")))

    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, shape, dtype in entries:
        if dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {dtype} has no safetensors name")
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {
            "dtype": _NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data section 8-byte aligned

    def chunks() -> Iterable[bytes | memoryview]:
        yield struct.pack("<Q", len(raw))
        yield raw
        for name, shape, dtype in entries:
            value = tensors[name]
            # asarray, not ascontiguousarray: the latter turns 0-d scalars (LoRA alphas) into 1-d
            array = np.asarray(value() if callable(value) else value, dtype=dtype, order="C")
            if tuple(array.shape) != shape:
                raise ValueError(f"{name}: produced shape {array.shape}, declared {shape}")
            yield array.data.cast("B")

    atomic_write(path, chunks())


def atomic_write(path: str | os.PathLike[str], chunks: Iterable[bytes | memoryview]) -> None:
    """Write to a temp file beside ``path``, fsync, then rename over it: readers never see a
    partial file, and a power loss cannot leave an empty one under the final name (a rename
    before the data is on disk can, with delayed allocation)."""
    target = Path(path)
    import tempfile  # lazily: it pulls shutil, bz2, lzma into every importer

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
