"""The load spec: an explicit model load (``/api/models/{id}/load``), planned like a job for
that model so the job finds the loaded context instead of loading a second copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import limits
from .context import EngineContext
from .errors import SpecError


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec(EngineContext):
    model: str  # id, relative path or name in the models dir

    KIND = "load"
    LIMITED: ClassVar[dict[str, str]] = {"n_threads": "n_threads"}

    def validate(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise SpecError("model must be a non-empty string")
        limits.check_fields(self, self.LIMITED)
