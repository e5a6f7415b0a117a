"""``POST /api/models/convert`` before it is queued: every check that can fail, done up front.

A request becomes the params of a ``convert`` job (absolute input, staging and output paths, the
engine's type name) only once everything a user can get wrong has been refused with a clear 400:
the type, the per-tensor rules, where the output goes, whether it exists. Free space is checked
last (507), against an estimate of the output's size from the input's tensor shapes. Nothing is
written here.

Quantization names: every ``sdcpp.options.WeightType`` (case-insensitive: ``Q8_0``, ``q4_k``),
plus ``fp16``/``fp32`` and seed 002's llama.cpp-style ``Q4_K_S``: the "S" (small) recipe is the
uniform one, so ``q{2..6}_k_s`` maps to ``q{2..6}_K``. ``_M``/``_L`` recipes mix types per tensor
by LLM tensor names the diffusion engine does not have; they are refused (400) with the choices
rather than silently written as something else — ``tensor_type_rules`` expresses any real mix.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidArgument, ModelLoadError
from ..gguf import GGML_TYPES
from ..options import WeightType
from ..registry import ModelEntry, ModelRegistry
from ..registry.model_types import TEXT_TYPES, TYPE_INFO
from ..registry.paths import is_inside, normalize_relpath
from .exceptions import ConversionInProgress, InsufficientStorage

# Spellings beyond the engine's own names (see the module docstring).
ALIASES: dict[str, WeightType] = {
    "fp16": WeightType.F16,
    "fp32": WeightType.F32,
    "float16": WeightType.F16,
    "float32": WeightType.F32,
    **{f"q{n}_k_s": WeightType(f"q{n}_K") for n in (2, 3, 4, 5, 6)},
}
_MIXED_RECIPE = re.compile(r"^q[2-6]_k_[ml]$")
# Bytes the free-space check keeps in reserve beyond the estimate (GGUF header, filesystem slack)
RESERVE_BYTES = 16 * 2**20
# Staging folders (hidden: the registry scan skips dot names) in the output's folder.
STAGING_PREFIX = ".convert-"


@dataclass(frozen=True, slots=True)
class ConvertPlan:
    input: Path
    output: Path
    output_rel: str  # relative to the models root, as the registry will list it
    type: WeightType
    vae: Path | None
    tensor_type_rules: str | None
    overwrite: bool
    estimated_bytes: int

    def job_params(self, model_name: str) -> dict[str, Any]:
        """What the job stores and the converter child receives: plain JSON."""
        return {
            "model_name": model_name,
            "input": str(self.input),
            "output": str(self.output),
            "output_rel": self.output_rel,
            "quantization_type": self.type.value,
            "vae": str(self.vae) if self.vae else None,
            "tensor_type_rules": self.tensor_type_rules,
            "overwrite": self.overwrite,
            "estimated_bytes": self.estimated_bytes,
        }


def choices() -> list[str]:
    return [t.value for t in WeightType] + sorted(ALIASES)


def parse_type(value: str) -> WeightType:
    """The engine type for a requested quantization name; InvalidArgument listing the choices."""
    folded = value.strip().lower()
    if folded in ALIASES:
        return ALIASES[folded]
    try:
        return WeightType(folded)
    except ValueError:
        pass
    listed = ", ".join(choices())
    if _MIXED_RECIPE.match(folded):
        raise InvalidArgument(
            f"quantization_type {value!r} is a llama.cpp mixed recipe this engine does not write; "
            f"use {folded[:4]} (optionally with tensor_type_rules). Choices: {listed}"
        )
    raise InvalidArgument(f"unknown quantization_type {value!r}; choose one of: {listed}")


def parse_rules(rules: str | None) -> str | None:
    """``regex=type,...`` as the engine reads it; each part checked here (a bad regex must not
    reach the engine's std::regex, whose exception would end the converter)."""
    if rules is None or not rules.strip():
        return None
    parts = []
    for raw in rules.split(","):
        item = raw.strip()
        pattern, sep, type_name = item.rpartition("=")
        if not item or not sep or not pattern:
            raise InvalidArgument(f"tensor_type_rules: {item!r} is not 'regex=type'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidArgument(f"tensor_type_rules: bad regex {pattern!r}: {exc}") from None
        try:
            wtype = WeightType(type_name.strip())
        except ValueError:
            raise InvalidArgument(
                f"tensor_type_rules: unknown type {type_name!r} in {item!r}; "
                f"choose one of: {', '.join(t.value for t in WeightType)}"
            ) from None
        parts.append(f"{pattern}={wtype.value}")
    return ",".join(parts)


def plan(
    registry: ModelRegistry,
    *,
    model_name: str,
    quantization_type: str,
    output_path: str | None = None,
    vae: str | None = None,
    tensor_type_rules: str | None = None,
    overwrite: bool = False,
    is_admin: bool = True,
    busy_outputs: Iterable[str] = (),
) -> ConvertPlan:
    """Check a convert request against the models dir. ``is_admin``: only admins may overwrite
    (no auth configured means everyone is). ``busy_outputs``: outputs of queued/running converts.

    Raises InvalidArgument (400), ModelNotFoundError (404), ConversionInProgress (409),
    InsufficientStorage (507)."""
    wtype = parse_type(quantization_type)
    rules = parse_rules(tensor_type_rules)
    entry = registry.get(model_name)
    if entry.type & TEXT_TYPES:
        raise InvalidArgument(f"{entry.name} is a {entry.type.slug} file, not model weights")
    source = registry.resolve(entry.id)
    vae_path = registry.resolve(registry.get(vae).id) if vae else None
    root_real = os.path.realpath(registry.root)
    rel = _output_relpath(entry, wtype, output_path)
    output = Path(root_real, *rel.split("/"))
    _check_output(root_real, rel, output, source, overwrite=overwrite, is_admin=is_admin)
    if str(output) in set(busy_outputs):
        raise ConversionInProgress(f"a queued conversion already writes {rel}")
    estimate = estimate_output_bytes([source, *([vae_path] if vae_path else [])], wtype)
    check_free_space(output.parent, estimate)
    return ConvertPlan(source, output, rel, wtype, vae_path, rules, overwrite, estimate)


def _output_relpath(entry: ModelEntry, wtype: WeightType, output_path: str | None) -> str:
    """The output's path under the root: a bare file name goes beside the input (a root-level
    input's output goes to its type's folder); a path with folders is relative to the root."""
    if output_path is None or not output_path.strip():
        stem = PurePosixPath(entry.path).stem
        name = f"{stem}-{wtype.value.lower()}.gguf"
    else:
        name = output_path.strip()
    if "\x00" in name:
        raise InvalidArgument("output_path contains a NUL character")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise InvalidArgument(
            f"output_path must be a file name or a path inside the models directory: {name!r}"
        )
    rel = normalize_relpath(name)  # refuses '..' (and absolute paths once more)
    if not rel.lower().endswith(".gguf"):
        raise InvalidArgument(f"output_path must end in .gguf: {name!r}")
    if PurePosixPath(rel).name.startswith("."):
        raise InvalidArgument(f"output_path must not be a hidden file: {name!r}")
    if "/" not in rel:  # a bare name: beside the input
        folder = PurePosixPath(entry.path).parent.as_posix()
        if folder == ".":
            folder = TYPE_INFO[entry.type].folders[0] if entry.type in TYPE_INFO else "checkpoints"
        rel = f"{folder}/{rel}"
    _check_scanned_folder(rel)
    return rel


def _check_scanned_folder(rel: str) -> None:
    # The result must be registered at once: it has to land where the registry looks for weights.
    for mtype, info in TYPE_INFO.items():
        if mtype & TEXT_TYPES:
            continue
        if any(rel.startswith(f"{folder}/") for folder in info.folders):
            return
    folders = sorted(i.folders[0] for t, i in TYPE_INFO.items() if not t & TEXT_TYPES)
    raise InvalidArgument(
        f"output_path {rel!r} is not inside a model folder ({', '.join(folders)})"
    )


def _check_output(
    root_real: str, rel: str, output: Path, source: Path, *, overwrite: bool, is_admin: bool
) -> None:
    parent = output.parent
    if not is_inside(root_real, str(parent)):
        raise InvalidArgument(f"output_path {rel!r} resolves outside the models directory")
    if not parent.is_dir():
        raise InvalidArgument(f"output folder does not exist: {PurePosixPath(rel).parent}")
    if os.path.islink(output) and not is_inside(root_real, str(output)):
        raise InvalidArgument(f"output_path {rel!r} is a link leaving the models directory")
    if os.path.realpath(output) == os.path.realpath(source):
        raise InvalidArgument("output_path is the input file itself")
    if os.path.lexists(output):
        if os.path.isdir(output):
            raise InvalidArgument(f"output_path {rel!r} is a folder")
        if not overwrite:
            raise InvalidArgument(f"{rel} exists; pass overwrite (admins only) to replace it")
        if not is_admin:
            raise InvalidArgument(f"{rel} exists and only an admin may overwrite it")


# -- size estimate and free space ------------------------------------------------------------
def estimate_output_bytes(paths: Iterable[Path], wtype: WeightType) -> int:
    """Bytes the GGUF will take: each tensor the engine quantizes at the target type's block
    size; 1-D tensors, biases and rows the block does not divide (conv kernels) kept at their
    source size (or the target's, if larger); plus per-tensor header bytes. An upper bound
    in practice: the synthetic SDXS model to q8_0 writes 683 MB for 691 MB estimated."""
    _, block, block_bytes = next(v for v in GGML_TYPES.values() if v[0] == wtype.value)
    target_elem = block_bytes / block
    total = 0
    for path in paths:
        for name, shape, source_elem in _tensors(path):
            total += 96 + len(name)  # name, dims, type, offset, alignment padding
            n = math.prod(shape) if shape else 1
            quantized = (
                len(shape) >= 2
                and shape[-1] % block == 0
                and not name.endswith(".bias")
                and "emb" not in name  # the engine keeps embeddings (token, position, time)
            )
            if quantized:
                total += n // block * block_bytes
            else:
                total += math.ceil(n * max(source_elem, target_elem if block == 1 else 0))
    return total


def _tensors(path: Path) -> Iterator[tuple[str, tuple[int, ...], float]]:
    """(name, shape in PyTorch order, source bytes per element) of every tensor in a file."""
    from .. import _safetensors
    from ..detect._read import read  # lazy: header readers are only needed here
    from ..gguf import GGUFError, read_gguf

    try:
        with path.open("rb") as f:
            head = f.read(4)
        if head == b"GGUF":
            for t in read_gguf(path, keep_arrays=False).tensors:
                n = math.prod(t.shape) or 1
                yield t.name, tuple(reversed(t.shape)), (t.nbytes or 4 * n) / n
            return
        if path.suffix.lower() == ".safetensors":
            header, _ = _safetensors.read_header(path)
            header.pop("__metadata__", None)
            for name, info in header.items():
                shape = tuple(int(x) for x in info["shape"])
                start, end = info["data_offsets"]
                yield name, shape, (end - start) / (math.prod(shape) or 1)
            return
        for name, dims in read(path).shapes.items():  # .ckpt: shapes only, dtype unknown
            yield name, tuple(dims or ()), 4.0
    except (ModelLoadError, GGUFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"cannot read the tensors of {path.name}: {exc}") from None


def check_free_space(folder: Path, needed: int) -> None:
    """507 when ``folder``'s disk lacks ``needed`` bytes plus the reserve. The message names
    the folder by its own name only: a client never learns the server's absolute paths."""
    free = shutil.disk_usage(folder).free
    if free < needed + RESERVE_BYTES:
        raise InsufficientStorage(
            f"the output needs about {_mib(needed)} MiB plus {_mib(RESERVE_BYTES)} MiB reserve; "
            f"{_mib(free)} MiB free on the disk of the {folder.name!r} folder",
        )


def _mib(n: int) -> int:
    return math.ceil(n / 2**20)


def staging_dir(output: Path, job_id: str) -> Path:
    """Where a job's converter writes before the result is moved into place (same folder, so
    the move is a rename; hidden, so the registry never lists a half-written file)."""
    return output.parent / f"{STAGING_PREFIX}{job_id}"
