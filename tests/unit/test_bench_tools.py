"""What `python -m bench` needs beyond `pip install .` is named before it is used."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "third_party"))

import engine_source  # noqa: E402  (third_party/engine_source.py, standard library only)

from bench import baselines  # noqa: E402


def test_missing_build_tools_are_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(baselines.BaselineToolsMissing) as refused:
        baselines.build_sd_cli(Path("/nonexistent"))
    message = str(refused.value)
    for needed in ("cmake", "ninja", "C++ compiler", "pip install cmake ninja"):
        assert needed in message


def test_present_build_tools_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    baselines.require_build_tools()  # raises nothing


def test_engine_source_is_fetched_without_scikit_build_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An environment made by `pip install .` has no scikit-build-core: pip must then build the
    sdist's metadata in its own isolated environment (the backend as a wheel), not in place."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "scikit_build_core" else real_find_spec(name, *a),
    )
    flags = engine_source.sdist_only_flags()
    assert "--no-build-isolation" not in flags
    assert flags == ["--no-binary", engine_source.PIN["distribution"]]


def test_engine_source_uses_the_backend_in_place_when_present(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside sdcpp's own build the backend is installed: no second isolated environment."""
    present = importlib.util.find_spec("json")  # any importable module's spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: present)
    assert engine_source.sdist_only_flags() == ["--no-binary", ":all:", "--no-build-isolation"]


def test_python_m_bench_names_a_missing_http_client_before_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An env made by `pip install .` has no httpx2: the run stops at once with one message
    (it used to fail with an ImportError after the library rows)."""
    from bench import run

    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "httpx2" else real_find_spec(name, *a),
    )
    assert run.main(["--quick"]) == 2
    assert "pip install httpx2" in capsys.readouterr().err
    assert run.missing_requirements(no_server=True) is None  # --no-server needs no client
