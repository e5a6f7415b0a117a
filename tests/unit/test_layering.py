"""The library's layers import downwards only: the registry lists and detects files, the plan
decides a context from the registry's answers, ``StableDiffusion.from_models_dir`` plans and
loads. No import of a higher layer, not even a lazy one inside a function (the kind that
hid two import cycles here before)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SDCPP = Path(__file__).resolve().parents[2] / "sdcpp"

# package -> the sdcpp modules it must never import
FORBIDDEN = {
    "registry": {"plan", "stable_diffusion", "server", "cli"},
    "plan": {"stable_diffusion", "server", "cli"},
    "jobspec": {"server", "cli", "stable_diffusion"},
}
# top-level module -> the sdcpp modules it must never import: the pieces split out of
# stable_diffusion.py sit below it (the class hands itself to them; they never import it)
FORBIDDEN_MODULES = {
    "_progress.py": {"stable_diffusion", "plan", "registry", "server", "cli"},
    "_infotext.py": {"stable_diffusion", "plan", "server", "cli"},
}


def imported_sdcpp_modules(path: Path, package: str | None) -> set[str]:
    """First component under ``sdcpp`` of every import in ``path`` (relative or absolute);
    ``package``: the sdcpp package ``path`` is in, None for a module directly in sdcpp."""
    found: set[str] = set()
    top = 1 if package is None else 2  # the relative level that means "sdcpp."
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("sdcpp."):
                found.add(node.module.split(".")[1])
            elif node.level == 1 and package is not None:
                found.add(package)  # inside its own package
            elif node.level == top:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sdcpp."))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    offenders = {
        str(path.relative_to(SDCPP)): sorted(bad)
        for path in sorted((SDCPP / package).glob("*.py"))
        if (bad := imported_sdcpp_modules(path, package) & FORBIDDEN[package])
    }
    assert offenders == {}


@pytest.mark.parametrize("module", sorted(FORBIDDEN_MODULES))
def test_split_out_modules_never_import_their_users(module: str) -> None:
    bad = imported_sdcpp_modules(SDCPP / module, None) & FORBIDDEN_MODULES[module]
    assert bad == set()


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from ..stable_diffusion import StableDiffusion\n")
    assert "stable_diffusion" in imported_sdcpp_modules(sample, "plan")


def test_the_check_sees_top_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from . import stable_diffusion\nfrom .plan import x\n")
    assert imported_sdcpp_modules(sample, None) == {"stable_diffusion", "plan"}
