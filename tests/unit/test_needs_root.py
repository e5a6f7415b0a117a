"""Root-needing tests skip with their reason for a normal user, and fail instead under CI."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

_spec = importlib.util.spec_from_file_location(
    "sdcpp_tests_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
)
assert _spec and _spec.loader
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def item_needing_root() -> SimpleNamespace:
    marker = pytest.mark.needs_root("pam_unix reads /etc/shadow").mark
    return SimpleNamespace(get_closest_marker=lambda name: marker if name == "needs_root" else None)


def test_a_normal_user_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(conftest.REQUIRE_ROOT_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root: pam_unix reads /etc/shadow"):
        conftest.pytest_runtest_setup(item_needing_root())


def test_ci_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv(conftest.REQUIRE_ROOT_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="must not skip"):
        conftest.pytest_runtest_setup(item_needing_root())


def test_root_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv(conftest.REQUIRE_ROOT_ENV, "1")
    conftest.pytest_runtest_setup(item_needing_root())  # neither skips nor fails
