"""``ModelSlot``: the worker's one loaded model (one set of weights in memory at a time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ModelSlot"]


class ModelSlot(Generic[T]):
    """Keeps the last loaded model, keyed by what it was loaded from; loading another closes
    it first. ``label`` names it for the server (the main model file)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.label: str | None = None
        self.model: T | None = None

    def get(
        self,
        key: str,
        load: Callable[[], T],
        check: Callable[[], object] | None = None,
        label: str | None = None,
    ) -> tuple[T, bool]:
        """(model, loaded_now). ``check`` runs before the loaded model is closed, so a request
        naming a missing or broken file fails without unloading the model in use."""
        if self.model is not None and key == self.key:
            return self.model, False
        if check is not None:
            check()
        self.clear()
        self.model = load()
        self.key, self.label = key, label
        return self.model, True

    def clear(self) -> None:
        model, self.model, self.key, self.label = self.model, None, None, None
        if model is not None:
            model.close()  # type: ignore[attr-defined]
