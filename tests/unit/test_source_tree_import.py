"""Importing sdcpp from a checkout that has no compiled extension names the two ways out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import sdcpp

PACKAGE = Path(sdcpp.__file__).parent


def test_import_without_the_extension_explains_itself(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "sdcpp", ignore=shutil.ignore_patterns("*.so", "*.pyd"))
    # -S: no site-packages, so no editable-install finder supplies the extension.
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import sdcpp"
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "no compiled extension" in last
    assert "pip install -e ." in last and "outside the checkout" in last
    assert "circular import" not in last
