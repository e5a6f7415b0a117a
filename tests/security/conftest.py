"""The attack suite's fixtures; its helpers are in attack.py (this folder, put on sys.path)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from attack import Served, serving
from test_images_api import server as local_server  # noqa: F401 (a fixture: a loopback site)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """``serve(**settings)``: the app on a fresh loopback port, stopped after the test."""
    yield from serving(tmp_path)
