"""Shared fixtures: synthetic models (built once per machine into a cache, never downloaded)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PgServer, start_server  # tests/unit is on pythonpath

import sdcpp
from sdcpp import synthetic


@pytest.fixture(scope="session")
def sd1_path() -> Path:
    """Full-size SD 1.x checkpoint in the original LDM layout (~2 GB, f16)."""
    return synthetic.cached_checkpoint("sd1")


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    """The small variant the engine recognises (fast generation)."""
    return synthetic.cached_checkpoint(synthetic.TINY_VARIANT)


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> Iterator[sdcpp.StableDiffusion]:
    with sdcpp.StableDiffusion(tiny_path, n_threads=2) as sd:
        yield sd


@pytest.fixture(scope="session")
def sd1(sd1_path: Path) -> Iterator[sdcpp.StableDiffusion]:
    with sdcpp.StableDiffusion(sd1_path, n_threads=2) as sd:
        yield sd


# Set by .ci/run (which runs as root): there a root-needing test that would skip fails instead.
REQUIRE_ROOT_ENV = "SDCPP_REQUIRE_ROOT_TESTS"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A throw-away PostgreSQL server on loopback for the session (tests/unit/pg_server.py):
    skips where none is installed, fails instead under SDCPP_REQUIRE_ROOT_TESTS (CI)."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that touches the ~2 GB model is `slow`, marked or not: `-m "not slow"` stays quick.
    for item in items:
        if {"sd1", "sd1_path"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("needs_root")
    if marker is None or os.geteuid() == 0:
        return
    reason = f"needs root: {marker.args[0] if marker.args else 'system accounts'}"
    if os.environ.get(REQUIRE_ROOT_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ROOT_ENV} is set, so this must not skip)")
    pytest.skip(reason)
