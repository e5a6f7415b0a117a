"""Shared fixtures: synthetic models (built once per machine into a cache, never downloaded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
