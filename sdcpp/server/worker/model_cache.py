"""``ModelCache``: the worker's loaded models, least recently used first out.

Up to ``max_models`` contexts stay loaded while their estimated sizes fit ``budget_bytes`` (0:
no budget). Loading one more evicts the least recently used until it fits; a model larger than
the whole budget is still loaded, alone. ``keep_alive`` seconds (0: forever) unloads a model
nobody used for that long, like Ollama's keep_alive: ``evict_idle()`` does it, called on the
worker's engine thread between jobs, because contexts must be closed on the thread that owns
them.

Sizes are estimates from the files a context loads (weights in memory are about their file
size on CPU); measuring RSS would count what the allocator keeps, not what a close frees.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ModelCache"]


@dataclass
class _Entry(Generic[T]):
    model: T
    label: str | None
    size: int
    last_used: float


class ModelCache(Generic[T]):
    def __init__(
        self,
        max_models: int = 1,
        budget_bytes: int = 0,
        keep_alive: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = max_models
        self.budget_bytes = max(0, budget_bytes)
        self.keep_alive = max(0.0, keep_alive)
        self.loads = 0  # contexts created since start: "no reload happened" is checkable
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()  # oldest use first

    # -- state -------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """Labels of the loaded models, most recently used first."""
        return [e.label for e in reversed(self._entries.values()) if e.label is not None]

    @property
    def label(self) -> str | None:
        """The most recently used model's label (None when nothing is loaded)."""
        labels = self.labels
        return labels[0] if labels else None

    @property
    def used_bytes(self) -> int:
        return sum(e.size for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    # -- use -----------------------------------------------------------------------------------
    def get(
        self,
        key: str,
        load: Callable[[], T],
        check: Callable[[], object] | None = None,
        label: str | None = None,
        size: int = 0,
    ) -> tuple[T, bool]:
        """(model, loaded_now). ``check`` runs before anything is evicted, so a request naming
        a missing or broken file fails with every loaded model still loaded."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            entry.last_used = self._clock()
            return entry.model, False
        if check is not None:
            check()
        self._make_room(size)
        model = load()
        self.loads += 1
        self._entries[key] = _Entry(model, label, size, self._clock())
        return model, True

    def _make_room(self, size: int) -> None:
        while self._entries and (
            len(self._entries) >= self.max_models
            or (self.budget_bytes and self.used_bytes + size > self.budget_bytes)
        ):
            self._close(next(iter(self._entries)))

    def evict_idle(self) -> list[str | None]:
        """Close models unused for ``keep_alive`` seconds; their labels."""
        if not self.keep_alive:
            return []
        now = self._clock()
        idle = [k for k, e in self._entries.items() if now - e.last_used >= self.keep_alive]
        return [self._close(key) for key in idle]

    def seconds_to_next_expiry(self) -> float | None:
        """How long until ``evict_idle`` has something to do (None: never)."""
        if not self.keep_alive or not self._entries:
            return None
        oldest = min(e.last_used for e in self._entries.values())
        return max(0.0, oldest + self.keep_alive - self._clock())

    def remove(self, label: str) -> bool:
        """Close every loaded context whose label is ``label``; False if there was none."""
        keys = [k for k, e in self._entries.items() if e.label == label]
        for key in keys:
            self._close(key)
        return bool(keys)

    def clear(self) -> None:
        for key in list(self._entries):
            self._close(key)

    def _close(self, key: str) -> str | None:
        entry = self._entries.pop(key)
        entry.model.close()  # type: ignore[attr-defined]
        return entry.label
