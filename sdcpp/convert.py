"""``convert()``: rewrite a model file as GGUF (or safetensors) with quantized tensors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from . import _native
from ._files import check_model_file
from .errors import InvalidArgument
from .options import WeightType

__all__ = ["convert"]


def convert(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    type: WeightType | str = WeightType.F16,
    vae: str | os.PathLike[str] | None = None,
    tensor_type_rules: str | None = None,
    convert_name: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Convert ``input_path`` to ``output_path`` (``.gguf`` or ``.safetensors``).

    Written to a temporary file beside the output, fsynced and renamed into place (then the
    directory is fsynced), so a failure leaves nothing behind. ``tensor_type_rules`` is the
    engine's "regex=type,..." per-tensor override.

    ``progress(tensors_done, total)`` is called from the converting thread about every 200 ms
    while tensors are read and converted, and once with ``tensors_done == total`` when they all
    are (before the file is written). An exception raised by ``progress`` cancels the conversion:
    the loader stops before its next tensor, nothing is written, the temp file is removed, and
    the exception propagates from ``convert()``. Conversions run one at a time per process.
    """
    try:
        wtype = WeightType(type)
    except ValueError:
        choices = ", ".join(t.value for t in WeightType)
        raise InvalidArgument(f"unknown type {type!r} (choose from {choices})") from None
    source = check_model_file(input_path, "input model")
    vae_path = str(check_model_file(vae, "vae")) if vae else ""
    out = Path(output_path).expanduser()
    if out.suffix.lower() not in (".gguf", ".safetensors"):
        raise InvalidArgument("output_path must end in .gguf or .safetensors")
    if not out.parent.is_dir():
        raise InvalidArgument(f"output directory does not exist: {out.parent}")
    import tempfile  # lazily: it pulls shutil, bz2, lzma into every importer

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
    os.close(fd)
    try:
        _native.convert(
            str(source),
            tmp,
            _native.SdType.from_library_name(wtype.value),
            vae_path=vae_path,
            tensor_type_rules=tensor_type_rules or "",
            convert_name=convert_name,
            progress=_tensor_progress(progress) if progress is not None else None,
        )
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    return out


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tensor_progress(progress: Callable[[int, int], None]) -> Callable[[int, int, float], None]:
    def call(done: int, total: int, _seconds_per_tensor: float) -> None:
        progress(done, total)

    return call
