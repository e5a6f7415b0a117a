"""Reading just enough of a model file: tensor names, shapes (PyTorch order), dtypes, metadata.

* safetensors: the JSON header (after ``check_model_file`` has verified the file is complete);
* GGUF: the key/values and tensor infos, walked in place over a memory map. Tokenizer arrays of
  LLM text encoders hold ~300k strings; they are skipped without building Python objects, and
  ggml's reversed dimension order (ne0 first) is turned back into PyTorch order;
* PyTorch zip (.ckpt/.pt/.pth/.bin): the zip directory and the ``data.pkl`` entry, scanned
  symbolically (``_pickle``); tensor data is never read and nothing is unpickled.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _safetensors
from .._files import GGUF_MAGIC, check_model_file
from ..errors import ModelLoadError
from ..gguf import GGUFInfo, GGUFTensor
from . import _pickle
from ._table import Shape

_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
# GGUF value types: fixed sizes and struct formats of the scalars; 8 string, 9 array
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_MAX_COUNT = 100_000_000
_MAX_STRING = 64 * 1024 * 1024
_MAX_PICKLE = 512 * 1024 * 1024
# City96's GGUF converter stores the original shape of tensors ggml cannot hold (5-D convs)
_ORIG_SHAPE = "comfy.gguf.orig_shape."


@dataclass(slots=True)
class Table:
    format: str
    shapes: dict[str, Shape | None]
    dtypes: Counter[str]
    metadata: dict[str, str] = field(default_factory=dict)
    containers: frozenset[str] = frozenset()
    evidence: list[str] = field(default_factory=list)


def read(path: str | os.PathLike[str]) -> Table:
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if head == GGUF_MAGIC and p.is_file():
        return _gguf(p)
    p = check_model_file(p)  # missing, foreign or truncated files end here
    if head == b"PK\x03\x04":
        return _torch_zip(p)
    return _safetensors_table(p)


def _safetensors_table(p: Path) -> Table:
    header, _ = _safetensors.read_header(p)
    meta = header.pop("__metadata__", None) or {}
    shapes: dict[str, Shape | None] = {
        name: tuple(int(x) for x in info["shape"]) for name, info in header.items()
    }
    dtypes = Counter(str(info["dtype"]) for info in header.values())
    metadata = {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
    return Table("safetensors", shapes, dtypes, metadata)


class _Cursor:
    """Reads GGUF fields in place; any read past the end is a truncated header."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos, self.end = buf, 0, len(buf)

    def take(self, s: struct.Struct) -> Any:
        value = s.unpack_from(self.buf, self.pos)[0]
        self.pos += s.size
        return value

    def count(self) -> int:
        n = int(self.take(_U64))
        if n > _MAX_COUNT:
            raise ValueError(f"implausible GGUF count {n}")
        return n

    def string(self) -> str:
        n = self.count()
        if n > _MAX_STRING:
            raise ValueError(f"implausible GGUF string length {n}")
        raw = self.buf[self.pos : self.pos + n]
        if len(raw) != n:
            raise struct.error("string past the end")
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.take(struct.Struct("<" + _SCALARS[vtype]))
        if vtype == 8:
            return self.string()
        if vtype != 9:
            raise ValueError(f"unknown GGUF value type {vtype}")
        item, n = self.take(_U32), self.count()
        if item in _SCALARS and not keep:  # fixed-size items: jump over them
            self.pos += n * struct.calcsize(_SCALARS[item])
            return None
        if item == 8 and not keep:  # strings (tokenizer vocabularies): walk the lengths only
            buf, pos, unpack = self.buf, self.pos, _U64.unpack_from
            for _ in range(n):
                pos += 8 + unpack(buf, pos)[0]
            self.pos = pos
            return None
        return [self.value(item, keep) for _ in range(n)]


def _gguf(p: Path) -> Table:
    size = p.stat().st_size
    try:
        with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            info = _walk_gguf(_Cursor(buf))
    except struct.error as exc:  # a read ran past the end of the file
        raise ModelLoadError(f"model file has a truncated GGUF header: {p}") from exc
    except (ValueError, OverflowError) as exc:
        raise ModelLoadError(f"model file has a broken GGUF header: {p}: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"model file cannot be read: {p}: {exc}") from exc
    if info.data_end > size:
        raise ModelLoadError(
            f"model file is truncated: {p} is {size} bytes, its header needs {info.data_end}"
        )
    shapes: dict[str, Shape | None] = {}
    for t in info.tensors:
        orig = info.metadata.get(_ORIG_SHAPE + t.name)
        shapes[t.name] = tuple(int(x) for x in orig) if orig else tuple(reversed(t.shape))
    metadata = {
        k: str(v)
        for k, v in info.metadata.items()
        if k.startswith("general.") and isinstance(v, str | int | float)
    }
    dtypes = Counter(t.type_name for t in info.tensors)
    evidence = []
    if "general.architecture" in metadata:
        evidence.append(f"gguf general.architecture = {metadata['general.architecture']!r}")
    return Table("gguf", shapes, dtypes, metadata, evidence=evidence)


def _walk_gguf(r: _Cursor) -> GGUFInfo:
    r.pos = 4
    version = r.take(_U32)
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.count(), r.count()
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        value = r.value(r.take(_U32), keep=key.startswith(_ORIG_SHAPE))
        if value is not None:
            metadata[key] = value
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take(_U32)
        if n_dims > 8:
            raise ValueError(f"GGUF tensor {name!r} has {n_dims} dimensions")
        shape = tuple(int(r.take(_U64)) for _ in range(n_dims))
        tensors.append(GGUFTensor(name, shape, int(r.take(_U32)), int(r.take(_U64))))
    alignment = int(metadata.get("general.alignment", 32)) or 32
    data_start = (r.pos + alignment - 1) // alignment * alignment
    return GGUFInfo(int(version), metadata, tensors, data_start)


def _torch_zip(p: Path) -> Table:
    try:
        with zipfile.ZipFile(p) as zf:
            entries = zf.infolist()
            pkl = next((e for e in entries if e.filename.endswith("data.pkl")), None)
            if pkl is None:
                raise ModelLoadError(f"model file is a zip without data.pkl: {p}")
            if pkl.file_size > _MAX_PICKLE:
                raise ModelLoadError(f"model file has an implausible {pkl.file_size}-byte pickle")
            data = zf.read(pkl)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelLoadError(f"model file is a broken zip archive: {p}: {exc}") from exc
    try:
        tensors, containers = _pickle.scan(data)
    except _pickle.PickleScanError as exc:
        raise ModelLoadError(f"model file {p}: {pkl.filename}: {exc}") from exc
    shapes = {name: t.shape for name, t in tensors.items()}
    dtypes = Counter(t.dtype for t in tensors.values())
    storages = sum(1 for e in entries if "/data/" in e.filename)
    evidence = [f"zip entry {pkl.filename} ({storages} storage entries)"]
    if containers:
        evidence.append("pickled dicts: " + ", ".join(sorted(containers)))
    return Table("ckpt", shapes, dtypes, {}, containers, evidence)
