"""``convert()``: rewrite a model file as GGUF (or safetensors) with quantized tensors."""

from __future__ import annotations

import os
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
) -> Path:
    """Convert ``input_path`` to ``output_path`` (``.gguf`` or ``.safetensors``).

    Written to a temporary file beside the output and renamed into place, so a failure leaves
    nothing behind. ``tensor_type_rules`` is the engine's "regex=type,..." per-tensor override.
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
        )
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
