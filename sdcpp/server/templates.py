"""Seed 002's text folders of the models dir: ``presets/`` (a saved set of generation
parameters: .json, .yaml, .yml) and ``prompts/`` / ``neg_prompts/`` (prompt templates: .txt,
.json), read into plain JSON for ``GET /api/presets`` and ``GET /api/prompts``; and saving a
preset, into the shared folder (admins) or a user's own one under the data dir.

Seed 002 names the folders and extensions, not what is inside; we read what people write:

- a preset is a JSON object of parameters, either flat (``{"steps": 20, ...}``) or under
  ``"parameters"`` (with optional ``"name"`` / ``"description"``); YAML presets are flat
  ``key: value`` lines (no nesting: PyYAML is not a dependency, and parameters are flat);
- a prompt template is a .txt file (its text), or JSON: a string, an object with ``"prompt"``
  / ``"text"`` (and optional ``"name"``), or a list of those (one template each).

A file that cannot be read is listed with an ``error`` instead of its content, so one bad file
never hides the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from ..registry.model_types import ModelType
from .exceptions import PresetExists

MAX_FILE_BYTES = 256 * 1024  # a preset or a template is a few hundred bytes; refuse blobs
MAX_FILES = 1000  # per folder: a listing stays one small response
Scalar = str | int | float | bool | None
_NAME = re.compile(r"^[\w][\w .+-]{0,99}$")  # a file stem people can read; no path parts
_SAFE_OWNER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix().lower())[:MAX_FILES]


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // 1024} KB")
    return path.read_text(encoding="utf-8")


def _scalar(value: str) -> Scalar:
    """A flat YAML value: JSON's scalars (numbers, true/false/null, "quoted"), else text."""
    text = value.strip()
    if text in ("~", ""):
        return None
    folded = text.lower()
    if folded in ("true", "yes", "on"):
        return True
    if folded in ("false", "no", "off"):
        return False
    if text[0] == "'" and text[-1] == "'" and len(text) > 1:
        return text[1:-1].replace("''", "'")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(parsed, str | int | float | bool) or parsed is None:
        return parsed
    raise ValueError("only flat key: value YAML is read (no lists or maps)")


def _flat_yaml(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        key, sep, value = line.partition(":")
        if not sep or line[0].isspace() or not key.strip():
            raise ValueError(f"line {number}: expected 'key: value' (flat YAML only)")
        if not value.strip():
            raise ValueError(f"line {number}: {key.strip()!r} has no value (no nesting)")
        out[key.strip()] = _scalar(value)
    return out


def _parameters(data: Any) -> dict[str, Scalar]:
    if not isinstance(data, dict):
        raise ValueError("a preset is an object of parameters")
    params = data.get("parameters", data)
    if not isinstance(params, dict):
        raise ValueError("'parameters' is not an object")
    out: dict[str, Scalar] = {}
    for key, value in params.items():
        if key in ("name", "description") and params is data:
            continue
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise ValueError(f"parameter {key!r} is not a plain value")
        out[str(key)] = value
    return out


def read_preset(path: Path) -> dict[str, Any]:
    """``{"name", "parameters", "description"?}`` or ``{"name", "error"}``."""
    entry: dict[str, Any] = {"name": path.stem}
    try:
        text = _read(path)
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else _flat_yaml(text)
        entry["parameters"] = _parameters(data)
        if isinstance(data, dict):
            for key in ("name", "description"):
                if isinstance(data.get(key), str) and data[key].strip():
                    entry[key] = data[key].strip()
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        entry.pop("parameters", None)
        entry["error"] = f"{path.name}: {exc}"
    return entry


def _template(item: Any, name: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"name": name, "text": item.strip()}
    if isinstance(item, dict):
        text = item.get("prompt", item.get("text"))
        if isinstance(text, str):
            label = item.get("name")
            return {"name": label if isinstance(label, str) and label else name, "text": text}
    raise ValueError("a template is a string or an object with 'prompt' or 'text'")


def read_templates(path: Path) -> list[dict[str, Any]]:
    """The templates of one prompt file: one per .txt, one or more per .json."""
    try:
        text = _read(path)
        if path.suffix.lower() != ".json":
            return [{"name": path.stem, "text": text.strip()}]
        data = json.loads(text)
        if isinstance(data, list):
            return [_template(item, f"{path.stem} {i + 1}") for i, item in enumerate(data)]
        return [_template(data, path.stem)]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [{"name": path.stem, "error": f"{path.name}: {exc}"}]


def own_folder(data_dir: Path, owner: str) -> Path:
    """A user's own presets, under the data dir (never inside the shared models dir)."""
    safe = owner if _SAFE_OWNER.match(owner) else hashlib.sha256(owner.encode()).hexdigest()
    return data_dir / "presets" / safe


def list_presets(models_dir: Path, own: Path | None) -> list[dict[str, Any]]:
    """Shared presets (the models dir's folders), then the caller's own."""
    exts = ModelType.PRESETS.extensions
    out: list[dict[str, Any]] = []
    for folder in ModelType.PRESETS.folders:
        root = models_dir / folder
        for path in _files(root, exts):
            rel = path.relative_to(models_dir).as_posix()
            out.append({"id": rel, "scope": "shared", **read_preset(path)})
    if own is not None:
        for path in _files(own, exts):
            rel = path.relative_to(own).as_posix()
            out.append({"id": f"own/{rel}", "scope": "own", **read_preset(path)})
    return out


def list_prompts(models_dir: Path, type: ModelType) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for folder in type.folders:
        for path in _files(models_dir / folder, type.extensions):
            rel = path.relative_to(models_dir).as_posix()
            for i, template in enumerate(read_templates(path)):
                out.append({"id": rel if i == 0 else f"{rel}#{i + 1}", **template})
    return out


def save_preset(
    folder: Path,
    name: str,
    parameters: dict[str, Any],
    *,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``{folder}/{name}.json`` atomically; 400 for a bad name, 409 when it exists."""
    if not _NAME.match(name) or name.strip() != name:
        raise InvalidArgument(
            "a preset name is 1-100 letters, digits, spaces or _ . + - (no path parts)"
        )
    target = folder / f"{name}.json"
    if target.exists() and not overwrite:
        raise PresetExists(f"a preset named {name!r} exists (overwrite: true replaces it)")
    try:
        data = {"name": name, "parameters": _parameters({"parameters": parameters})}
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if description:
        data["description"] = description
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target
