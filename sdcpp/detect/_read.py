"""Reading just enough of a model file: tensor names, shapes (PyTorch order), dtypes, metadata.

* safetensors: the JSON header (after ``check_model_file`` has verified the file is complete);
* GGUF: the key/values and tensor infos, walked in place over a memory map. Tokenizer arrays of
  LLM text encoders hold ~300k strings; they are skipped without building Python objects, and
  ggml's reversed dimension order (ne0 first) is turned back into PyTorch order;
* PyTorch zip (.ckpt/.pt/.pth/.bin): the zip directory and the ``data.pkl`` entry, scanned
  symbolically (``_pickle``); tensor data is never read and nothing is unpickled.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import _safetensors
from .._files import GGUF_MAGIC, check_model_file
from ..errors import ModelLoadError
from ..gguf import GGUFError, read_gguf
from . import _pickle
from ._table import Shape

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


def _gguf(p: Path) -> Table:
    size = p.stat().st_size
    try:
        # only the original-shape arrays matter here; tokenizer arrays are skipped unbuilt
        info = read_gguf(p, keep_arrays=lambda key: key.startswith(_ORIG_SHAPE))
    except GGUFError as exc:
        kind = "truncated" if "truncated" in str(exc) else "broken"
        raise ModelLoadError(f"model file has a {kind} GGUF header: {p}: {exc}") from exc
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
