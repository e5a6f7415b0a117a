"""Cancelling a running generation (our engine patch: third_party/patches/0001)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import sdcpp

REQUEST = {"width": 64, "height": 64, "steps": 12, "seed": 5}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_cancel_from_progress_stops_and_context_is_reusable(tiny: sdcpp.StableDiffusion) -> None:
    reference = np.asarray(tiny.generate("a dog", **REQUEST)[0])
    steps: list[int] = []

    def on_progress(p: sdcpp.Progress) -> None:
        if p.phase == "sampling" and p.step > 0:
            steps.append(p.step)
            if p.step == 2:
                tiny.cancel()

    with pytest.raises(sdcpp.Cancelled):
        tiny.generate("a dog", progress=on_progress, **REQUEST)
    assert steps == [1, 2]  # stopped before step 3 started
    after = np.asarray(tiny.generate("a dog", **REQUEST)[0])
    assert after.tobytes() == reference.tobytes()


def test_cancel_from_another_thread(tiny: sdcpp.StableDiffusion) -> None:
    started = threading.Event()
    last_step: list[int] = []

    def on_progress(p: sdcpp.Progress) -> None:
        if p.phase == "sampling" and p.step > 0:
            last_step.append(p.step)
            started.set()

    canceller = threading.Thread(target=lambda: (started.wait(60), tiny.cancel()))
    canceller.start()
    with pytest.raises(sdcpp.Cancelled):
        tiny.generate("a dog", progress=on_progress, **{**REQUEST, "steps": 200})
    canceller.join()
    assert last_step and last_step[-1] < 200


def test_cancel_when_idle_is_a_no_op(tiny: sdcpp.StableDiffusion) -> None:
    tiny.cancel()
    assert tiny.generate("a dog", **{**REQUEST, "steps": 1})[0].size == (64, 64)


def test_rss_does_not_grow_over_20_cancels(tiny: sdcpp.StableDiffusion) -> None:
    def cancel_at_first_step(p: sdcpp.Progress) -> None:
        if p.phase == "sampling" and p.step == 1:
            tiny.cancel()

    def cancel_once() -> None:
        with pytest.raises(sdcpp.Cancelled):
            tiny.generate("a dog", progress=cancel_at_first_step, **REQUEST)

    for _ in range(3):  # warm up allocator pools
        cancel_once()
    before = rss_kib()
    for _ in range(20):
        cancel_once()
    assert rss_kib() - before < 8 * 1024  # KiB: no per-cancel leak
