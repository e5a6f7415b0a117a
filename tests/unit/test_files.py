from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from sdcpp import ModelLoadError, _safetensors
from sdcpp._files import check_model_file
from sdcpp.gguf import read_gguf


def write_small(path: Path) -> Path:
    _safetensors.save(
        path,
        {"a": np.arange(12, dtype=np.float16).reshape(3, 4), "b": np.ones(5, np.float32)},
        metadata={"k": "v"},
    )
    return path


def test_safetensors_round_trip(tmp_path: Path) -> None:
    path = write_small(tmp_path / "m.safetensors")
    tensors = _safetensors.load(path)
    assert tensors["a"].dtype == np.float16 and tensors["a"].shape == (3, 4)
    assert tensors["a"][2, 3] == 11
    header, _ = _safetensors.read_header(path)
    assert header["__metadata__"] == {"k": "v"}
    assert check_model_file(path) == path.resolve()


def test_truncated_safetensors_is_refused(tmp_path: Path) -> None:
    path = write_small(tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ModelLoadError, match="truncated"):
        check_model_file(path)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        check_model_file(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(ModelLoadError, match="not a safetensors"):
        check_model_file(junk)
    with pytest.raises(ModelLoadError, match="not a file"):
        check_model_file(tmp_path)


def _gguf_string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, data_bytes: int) -> None:
    """One f32 tensor of 8 elements (32 bytes), general.alignment left at its default 32."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    out += _gguf_string("general.name") + struct.pack("<I", 8) + _gguf_string("t")
    out += _gguf_string("w") + struct.pack("<I", 1) + struct.pack("<Q", 8)
    out += struct.pack("<IQ", 0, 0)
    out += b"\0" * (-len(out) % 32)
    path.write_bytes(out + b"\1" * data_bytes)


def test_gguf_reader_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_gguf(path, 32)
    info = read_gguf(path)
    assert info.metadata == {"general.name": "t"}
    assert [(t.name, t.shape, t.type_name, t.nbytes) for t in info.tensors] == [
        ("w", (8,), "f32", 32)
    ]
    assert info.data_end == path.stat().st_size
    check_model_file(path)
    write_gguf(path, 31)
    with pytest.raises(ModelLoadError, match="truncated"):
        check_model_file(path)
