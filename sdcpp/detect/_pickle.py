"""Tensor names, shapes and dtypes from a PyTorch ``data.pkl``, without unpickling it.

``pickle.load`` would import and call whatever the file names; this module instead walks the
opcodes (``pickletools.genops``) with a symbolic stack: globals stay names, calls stay inert
records, and only the calls PyTorch itself writes for tensors (``torch._utils._rebuild_tensor_v2``
with a persistent-id storage, wrapped by ``_rebuild_parameter``) are interpreted, to read a
tensor's size and storage type. Nothing is imported or executed.

Like the engine's own reader (``src/model_io/pickle_io.cpp``), nested dicts (``{"state_dict":
{...}}``) are flattened and each tensor keeps its innermost key as its name.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from typing import Any, cast

# torch storage classes -> the dtype names safetensors uses
_STORAGE_DTYPES = {
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "DoubleStorage": "F64",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
}
_PUSH_ARG = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
    ]
)
_IGNORED = frozenset({"PROTO", "FRAME"})
_MAX_OPS = 50_000_000  # a corrupt or hostile pickle must not spin forever


class PickleScanError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Global:
    module: str
    name: str


@dataclass(frozen=True, slots=True)
class _Storage:
    dtype: str


@dataclass(frozen=True, slots=True)
class Tensor:
    shape: tuple[int, ...] | None
    dtype: str


@dataclass(slots=True)
class _Call:
    """An object the pickle would construct; kept as an inert record."""

    func: Any
    args: Any


@dataclass(slots=True)
class _Dict:
    items: dict[Any, Any] = field(default_factory=dict)


class _Mark:
    pass


_MARK = _Mark()


def _call(func: Any, args: Any) -> Any:
    """The symbolic result of ``func(*args)``: tensors and dicts are understood, the rest kept."""
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        return _Call(func, args)
    where = (func.module, func.name)
    if where in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
        storage = args[0] if args else None
        size = args[2] if len(args) > 2 else None
        shape = (
            tuple(size) if isinstance(size, tuple) and all(type(x) is int for x in size) else None
        )
        dtype = storage.dtype if isinstance(storage, _Storage) else "unknown"
        return Tensor(shape, dtype)
    if func.module == "torch._utils" and func.name.startswith("_rebuild_parameter") and args:
        return args[0]  # a Parameter wraps its tensor
    if where == ("torch._tensor", "_rebuild_from_type_v2") and len(args) > 2:
        return _call(args[0], args[2])
    if where in {("collections", "OrderedDict"), ("builtins", "dict")}:
        return _Dict()
    return _Call(func, args)


def _persistent(pid: Any) -> Any:
    # torch.save writes ('storage', <storage class>, key, location, numel) for each storage
    if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "storage":
        kind = pid[1]
        name = kind.name if isinstance(kind, _Global) else ""
        return _Storage(_STORAGE_DTYPES.get(name, name or "unknown"))
    return _Call("persistent_load", pid)


def _run(data: bytes) -> Any:
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise PickleScanError("pickle MARK missing")

    for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
        if count > _MAX_OPS:
            raise PickleScanError("pickle is implausibly long")
        name = op.name
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _IGNORED:
            pass
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "STOP":
            if not stack:
                raise PickleScanError("empty pickle")
            return stack[-1]
        elif name in {"NONE", "NEWTRUE", "NEWFALSE"}:
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in {"TUPLE1", "TUPLE2", "TUPLE3"}:
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in {"EMPTY_LIST", "EMPTY_SET"}:
            stack.append([])
        elif name in {"LIST", "FROZENSET"}:
            stack.append(pop_mark())
        elif name == "APPEND":
            value = stack.pop()
            if isinstance(stack[-1], list):
                stack[-1].append(value)
        elif name in {"APPENDS", "ADDITEMS"}:
            items = pop_mark()
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name == "EMPTY_DICT":
            stack.append(_Dict())
        elif name in {"DICT", "SETITEMS"}:
            items = pop_mark()
            target = _Dict() if name == "DICT" else stack[-1]
            if isinstance(target, _Dict):
                for k, v in zip(items[::2], items[1::2], strict=False):
                    if isinstance(k, str | int):
                        target.items[k] = v
            if name == "DICT":
                stack.append(target)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            if isinstance(stack[-1], _Dict) and isinstance(key, str | int):
                stack[-1].items[key] = value
        elif name in {"PUT", "BINPUT", "LONG_BINPUT"}:
            memo[cast(int, arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in {"GET", "BINGET", "LONG_BINGET"}:
            if arg not in memo:
                raise PickleScanError(f"pickle memo {arg} missing")
            stack.append(memo[arg])
        elif name in {"GLOBAL", "INST"}:
            module, _, qualname = str(arg).partition(" ")
            if name == "GLOBAL":
                stack.append(_Global(module, qualname))
            else:
                stack.append(_call(_Global(module, qualname), tuple(pop_mark())))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(_Global(str(module), str(qualname)))
        elif name == "BINPERSID":
            stack.append(_persistent(stack.pop()))
        elif name == "PERSID":
            stack.append(_persistent(arg))
        elif name in {"REDUCE", "NEWOBJ"}:
            args = stack.pop()
            stack.append(_call(stack.pop(), args))
        elif name == "NEWOBJ_EX":
            _kwargs, args = stack.pop(), stack.pop()
            stack.append(_call(stack.pop(), args))
        elif name == "OBJ":
            items = pop_mark()
            stack.append(_call(items[0], tuple(items[1:])) if items else None)
        elif name == "BUILD":
            stack.pop()  # the object's state: irrelevant to names and shapes
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        else:  # EXT*, buffers: never written by torch.save
            raise PickleScanError(f"unsupported pickle opcode {name}")
    raise PickleScanError("pickle has no STOP")


def _collect(
    value: Any, tensors: dict[str, Tensor], others: dict[str, Tensor], containers: set[str]
) -> None:
    if not isinstance(value, _Dict):
        return
    for key, item in value.items.items():
        if not isinstance(key, str):
            continue
        if isinstance(item, Tensor):
            tensors[key] = item
        elif isinstance(item, _Dict):
            containers.add(key)
            _collect(item, tensors, others, containers)
        elif isinstance(item, _Call):
            others[key] = Tensor(None, "unknown")


def scan(data: bytes) -> tuple[dict[str, Tensor], frozenset[str]]:
    """Return ({name: Tensor}, names of the dicts that wrapped them) for a torch ``data.pkl``.

    When no torch tensor is found, values that are opaque objects count as tensors of unknown
    shape (a state dict pickled by another library still names its weights).
    """
    try:
        root = _run(data)
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise PickleScanError(f"unreadable pickle: {exc}") from exc
    tensors: dict[str, Tensor] = {}
    others: dict[str, Tensor] = {}
    containers: set[str] = set()
    _collect(root, tensors, others, containers)
    return (tensors or others), frozenset(containers)
