"""A header-only GGUF reader: metadata key/values and tensor infos, never tensor data.

Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor count, u64 kv count,
the key/values (string key, u32 value type, value), then per tensor: name, u32 n_dims, u64 dims,
u32 ggml type, u64 offset relative to the data section. The data section starts at the next
multiple of ``general.alignment`` (default 32) after the tensor infos.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

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
_MAX_COUNT = 10_000_000  # far above any real model; stops a corrupt count from looping forever
_MAX_STRING = 64 * 1024 * 1024


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


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError("GGUF header is truncated")
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        n = self.scalar("<Q")
        if n > _MAX_COUNT:
            raise GGUFError(f"implausible GGUF count {n}")
        return int(n)

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > _MAX_STRING:
            raise GGUFError(f"implausible GGUF string length {n}")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.scalar("<I")
            return [self.value(item_type) for _ in range(self.count())]
        raise GGUFError(f"unknown GGUF value type {vtype}")


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    with open(path, "rb") as f:
        r = _Reader(f)
        if r.take(4) != b"GGUF":
            raise GGUFError("not a GGUF file")
        version = r.scalar("<I")
        if version not in (2, 3):
            raise GGUFError(f"unsupported GGUF version {version}")
        n_tensors, n_kv = r.count(), r.count()
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.scalar("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.scalar("<I")
            if n_dims > 8:
                raise GGUFError(f"tensor {name!r} has {n_dims} dimensions")
            shape = tuple(int(r.scalar("<Q")) for _ in range(n_dims))
            tensors.append(GGUFTensor(name, shape, int(r.scalar("<I")), int(r.scalar("<Q"))))
        alignment = int(metadata.get("general.alignment", 32)) or 32
        pos = f.tell()
    data_start = (pos + alignment - 1) // alignment * alignment
    return GGUFInfo(version, metadata, tensors, data_start)
