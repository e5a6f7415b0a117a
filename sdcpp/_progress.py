"""Progress reports and the seed rule shared by ``StableDiffusion``'s load and generate calls.

The engine reports ``(step, total, seconds_per_step)``; ``progress_adapter`` turns that into a
``Progress`` with the phase and the time since the call started, so callers never see the
engine's own timing (it restarts per phase).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

__all__ = ["PreviewCallback", "Progress", "ProgressCallback", "progress_adapter", "resolve_seed"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report. ``phase`` is "loading" (tensors read) or "sampling" (steps)."""

    phase: str
    step: int
    total: int
    elapsed: float  # seconds since the call started

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total > 0 else 0.0


ProgressCallback = Callable[[Progress], Any]
PreviewCallback = Callable[[int, list[Image.Image], bool], Any]


def resolve_seed(seed: int | None) -> int:
    """None or negative: a fresh random seed, reported back to the caller."""
    return seed if seed is not None and seed >= 0 else random.randrange(2**31)


def progress_adapter(
    callback: ProgressCallback | None, phase: str, started: float
) -> Callable[[int, int, float], None] | None:
    """The engine's progress callback for ``callback`` (None: no callback, no native cost)."""
    if callback is None:
        return None

    def report(step: int, total: int, _seconds_per_step: float) -> None:
        callback(Progress(phase, step, total, time.perf_counter() - started))

    return report
