"""The .pyi stub and the compiled module name the same things."""

from __future__ import annotations

import ast
from pathlib import Path

from sdcpp import _native

STUB = Path(__file__).resolve().parents[2] / "sdcpp" / "_native.pyi"
PRIVATE_TO_STUB = {"Image", "ProgressFn", "PreviewFn", "_EngineEnum", "_PybindEnum"}


def stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names - PRIVATE_TO_STUB


def test_every_stub_name_exists_in_the_module() -> None:
    missing = sorted(n for n in stub_names() if not hasattr(_native, n))
    assert missing == []


def test_every_public_module_name_is_in_the_stub() -> None:
    public = {n for n in dir(_native) if not n.startswith("_")}
    assert sorted(public - stub_names()) == []
