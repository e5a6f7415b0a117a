"""A header-only GGUF reader: metadata key/values and tensor infos, never tensor data.

Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor count, u64 kv count,
the key/values (string key, u32 value type, value), then per tensor: name, u32 n_dims, u64 dims,
u32 ggml type, u64 offset relative to the data section. The data section starts at the next
multiple of ``general.alignment`` (default 32) after the tensor infos.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["GGML_TYPES", "GGUFError", "GGUFInfo", "GGUFTensor", "read_gguf"]

# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24),
    8: ("q8_0", 32, 34),
    9: ("q8_1", 32, 36),
    10: ("q2_K", 256, 84),
    11: ("q3_K", 256, 110),
    12: ("q4_K", 256, 144),
    13: ("q5_K", 256, 176),
    14: ("q6_K", 256, 210),
    15: ("q8_K", 256, 292),
    16: ("iq2_xxs", 256, 66),
    17: ("iq2_xs", 256, 74),
    18: ("iq3_xxs", 256, 98),
    19: ("iq1_s", 256, 50),
    20: ("iq4_nl", 32, 18),
    21: ("iq3_s", 256, 110),
    22: ("iq2_s", 256, 82),
    23: ("iq4_xs", 256, 136),
    24: ("i8", 1, 1),
    25: ("i16", 1, 2),
    26: ("i32", 1, 4),
    27: ("i64", 1, 8),
    28: ("f64", 1, 8),
    29: ("iq1_m", 256, 56),
    30: ("bf16", 1, 2),
    34: ("tq1_0", 256, 54),
    35: ("tq2_0", 256, 66),
    39: ("mxfp4", 32, 17),
}

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_COUNT = 100_000_000  # far above any real model; stops a corrupt count from looping forever
_MAX_STRING = 64 * 1024 * 1024

KeepArrays = bool | Callable[[str], bool]


class GGUFError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # ggml order: ne[0] first (fastest-varying)
    type_id: int
    offset: int  # relative to the data section

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"type{self.type_id}", 0, 0))[0]

    @property
    def nbytes(self) -> int | None:
        known = GGML_TYPES.get(self.type_id)
        if known is None:
            return None
        _, block, size = known
        count = 1
        for dim in self.shape:
            count *= dim
        return count // block * size


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    version: int
    metadata: dict[str, Any]
    tensors: list[GGUFTensor]
    data_start: int

    @property
    def data_end(self) -> int:
        """Smallest file size that holds every tensor of known type."""
        end = self.data_start
        for t in self.tensors:
            if t.nbytes is not None:
                end = max(end, self.data_start + t.offset + t.nbytes)
        return end


class _Cursor:
    """Reads fields in place over a memory map; a read past the end is a truncated header."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: struct.Struct) -> Any:
        try:
            value = fmt.unpack_from(self.buf, self.pos)[0]
        except struct.error:
            raise GGUFError("GGUF header is truncated") from None
        self.pos += fmt.size
        return value

    def count(self) -> int:
        n = int(self.take(_U64))
        if n > _MAX_COUNT:
            raise GGUFError(f"implausible GGUF count {n}")
        return n

    def string(self) -> str:
        n = self.count()
        if n > _MAX_STRING:
            raise GGUFError(f"implausible GGUF string length {n}")
        raw = self.buf[self.pos : self.pos + n]
        if len(raw) != n:
            raise GGUFError("GGUF header is truncated")
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.take(struct.Struct(_SCALARS[vtype]))
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise GGUFError(f"unknown GGUF value type {vtype}")
        item, n = self.take(_U32), self.count()
        if not keep and item in _SCALARS:  # fixed-size items: jump over them
            self.pos += n * struct.calcsize(_SCALARS[item])
            return None
        if not keep and item == _STRING:  # tokenizer vocabularies: walk the lengths only
            buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
            try:
                for _ in range(n):
                    pos += 8 + unpack(buf, pos)[0]
            except struct.error:
                raise GGUFError("GGUF header is truncated") from None
            self.pos = pos
            return None
        return [self.value(item, keep) for _ in range(n)]


def read_gguf(path: str | os.PathLike[str], keep_arrays: KeepArrays = True) -> GGUFInfo:
    """Metadata and tensor infos. ``keep_arrays`` (a bool, or a predicate on the key) says
    which array values to build: tokenizer arrays of LLM encoders hold ~300k strings, and
    skipping them makes a header read of such a file ~10x faster. Skipped arrays are absent
    from ``metadata``."""
    keep = keep_arrays if callable(keep_arrays) else (lambda _key: bool(keep_arrays))
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _walk(_Cursor(buf), keep)
    except ValueError as exc:
        if isinstance(exc, GGUFError):
            raise
        raise GGUFError(f"not a GGUF file ({exc})") from None  # e.g. mmap of an empty file


def _walk(r: _Cursor, keep: Callable[[str], bool]) -> GGUFInfo:
    if bytes(r.buf[:4]) != b"GGUF":
        raise GGUFError("not a GGUF file")
    r.pos = 4
    version = r.take(_U32)
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.count(), r.count()
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        value = r.value(r.take(_U32), keep(key))
        if value is not None:
            metadata[key] = value
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take(_U32)
        if n_dims > 8:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(int(r.take(_U64)) for _ in range(n_dims))
        tensors.append(GGUFTensor(name, shape, int(r.take(_U32)), int(r.take(_U64))))
    alignment = int(metadata.get("general.alignment", 32)) or 32
    data_start = (r.pos + alignment - 1) // alignment * alignment
    return GGUFInfo(int(version), metadata, tensors, data_start)
