"""tqdm progress bars for the library's progress callbacks (on stderr, only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm


@contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[Callable[[Any], None]]:
    """Yield a callback taking ``sdcpp.Progress``; one bar per phase ("loading", "sampling")."""
    show = sys.stderr.isatty() if enabled is None else enabled
    bars: dict[str, tqdm] = {}

    def update(p: Any) -> None:
        if not show or p.total <= 0:
            return
        bar = bars.get(p.phase)
        if bar is None or bar.total != p.total:
            if bar is not None:
                bar.close()
            from tqdm import tqdm  # only on a terminal: ~15 ms of imports otherwise wasted

            bar = bars[p.phase] = tqdm(
                total=p.total, desc=p.phase, unit="step", leave=False, file=sys.stderr
            )
        bar.n = p.step
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()
