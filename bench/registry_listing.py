"""How long a models listing takes with 1,000 files: cached, and when it rescans.

``python -m bench.registry_listing`` prints median milliseconds. Detection is stubbed (its
result is cached per file, so a steady-state rescan only walks the folders and stats).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import sdcpp.registry.core as core
from sdcpp.registry import ModelRegistry


def _median_ms(fn: object, n: int = 50) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoints"
        folder.mkdir()
        for i in range(1000):
            (folder / f"m{i:04}.safetensors").write_bytes(b"x")
        reg = ModelRegistry(tmp, detector=lambda p: None)
        reg.refresh()
        cached = _median_ms(lambda: reg.list(limit=50))
        core.RESCAN_INTERVAL_S = 0.0  # every listing rescans
        stale = _median_ms(lambda: reg.list(limit=50))
        full = _median_ms(reg.refresh, n=10)
    print(
        f"1000 files: list() {cached:.2f} ms fresh, {stale:.2f} ms when stale (rescan runs in "
        f"the background); a full refresh() {full:.1f} ms"
    )


if __name__ == "__main__":
    main()
