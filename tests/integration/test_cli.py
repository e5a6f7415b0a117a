"""The ``sdcpp`` command line, in-process (fast) and once through the installed script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sdcpp import read_parameters
from sdcpp.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["engine_version"] == "stable-diffusion-cpp-python-0.4.7"
    assert info["physical_cores"] >= 1 and info["cancel"] is True


def test_generate_writes_png_with_parameters(
    capsys: pytest.CaptureFixture[str], tiny_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fox.png"
    code, stdout, _ = run(
        capsys,
        "generate",
        "-m",
        str(tiny_path),
        "-p",
        "a red fox",
        "-W",
        "64",
        "-H",
        "64",
        "--steps",
        "2",
        "-s",
        "7",
        "-t",
        "2",
        "-o",
        str(out),
    )
    assert code == 0 and stdout.strip() == str(out)
    params = read_parameters(out)
    assert (params["prompt"], params["seed"], params["steps"]) == ("a red fox", 7, 2)
    with tiny_path.open("rb") as f:
        assert params["settings"]["Model hash"] == hashlib.file_digest(f, "sha256").hexdigest()[:10]
    with Image.open(out) as image:
        assert image.size == (64, 64)


def test_generate_by_name_from_models_dir(
    capsys: pytest.CaptureFixture[str], tiny_path: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    os.link(tiny_path, models / "tiny.safetensors")  # a symlink leaving the dir would be refused
    out = tmp_path / "x.png"
    code, _, err = run(
        capsys,
        "generate",
        "--models-dir",
        str(tmp_path / "models"),
        "-m",
        "tiny",
        "-p",
        "x",
        "-W",
        "64",
        "-H",
        "64",
        "--steps",
        "1",
        "-o",
        str(out),
    )
    assert code == 0, err
    assert out.exists()
    code, stdout, _ = run(
        capsys, "models", "list", "--models-dir", str(tmp_path / "models"), "--json"
    )
    (entry,) = json.loads(stdout)
    assert (entry["name"], entry["architecture"]) == ("tiny", "sdxs")


def test_convert_and_detect(
    capsys: pytest.CaptureFixture[str], tiny_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-q8.gguf"
    code, _, err = run(capsys, "convert", "-m", str(tiny_path), "-o", str(out), "--type", "q8_0")
    assert code == 0, err
    code, stdout, _ = run(capsys, "models", "detect", str(out), str(tiny_path), "--json")
    results = json.loads(stdout)
    assert [(r["id"], r["format"]) for r in results] == [("sdxs", "gguf"), ("sdxs", "safetensors")]


def test_user_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_path: Path
) -> None:
    code, _, err = run(capsys, "generate", "-m", str(tmp_path / "none.safetensors"), "-p", "x")
    assert code == 1
    assert err.count("\n") == 1 and "not found" in err and "Traceback" not in err
    code, _, err = run(capsys, "convert", "-m", str(tiny_path), "-o", str(tmp_path / "b.txt"))
    assert code == 1 and "must end in .gguf" in err


def test_installed_script_runs() -> None:
    script = shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))
    result = subprocess.run(
        [script, "info", "--json"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"]


def test_import_upscalers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "models", "import-upscalers", "--models-dir", str(tmp_path))
    assert code == 0, err
    written = sorted(Path(line).name for line in out.split())
    assert written == ["RealESRGAN_x4plus.safetensors", "RealESRGAN_x4plus_anime_6B.safetensors"]
    code, out, _ = run(capsys, "models", "detect", str(tmp_path / "esrgan" / written[1]), "--json")
    assert json.loads(out)[0]["id"] == "esrgan"
