"""What the registry hands out: entries, pages, refresh reports, folder states (all JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model_types import ModelType

SHORT_HASH_LEN = 10  # A1111's "model hash": the first 10 hex digits of the file's SHA-256


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str  # sha1 of the relative POSIX path, 16 hex digits (paths.model_id)
    name: str  # file stem
    type: ModelType
    architecture: str  # Detection.id, "unknown" when detection failed, "none" for text files
    size: int
    mtime: float
    path: str  # relative to the models root, POSIX separators
    sha256: str | None = None  # only once computed (here or by an earlier run, via the cache)
    error: str | None = None  # why detection failed; the file is still listed

    @property
    def short_hash(self) -> str | None:
        return self.sha256[:SHORT_HASH_LEN] if self.sha256 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type.slug,
            "type_value": int(self.type),
            "architecture": self.architecture,
            "size": self.size,
            "mtime": self.mtime,
            "path": self.path,
            "sha256": self.sha256,
            "short_hash": self.short_hash,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RefreshReport:
    found: tuple[ModelEntry, ...]  # new since the previous refresh (everything, the first time)
    updated: tuple[ModelEntry, ...]  # same path, different size or mtime
    removed: tuple[ModelEntry, ...]  # the last known entries of files now gone
    total: int

    def to_dict(self) -> dict[str, Any]:
        def brief(entries: tuple[ModelEntry, ...]) -> list[dict[str, str]]:
            return [{"id": e.id, "path": e.path} for e in entries]

        return {
            "found": brief(self.found),
            "updated": brief(self.updated),
            "removed": brief(self.removed),
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ModelEntry, ...]
    total: int  # matches before pagination
    page: int
    limit: int | None  # None: everything on one page

    @property
    def pages(self) -> int:
        if not self.limit:
            return 1
        return max(1, -(-self.total // self.limit))

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [e.to_dict() for e in self.items],
            "total": self.total,
            "page": self.page,
            "limit": self.limit,
            "pages": self.pages,
        }


@dataclass(frozen=True, slots=True)
class DirectoryStatus:
    type: ModelType
    folder: str  # relative to the models root
    path: Path
    exists: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.slug,
            "folder": self.folder,
            "path": str(self.path),
            "exists": self.exists,
        }
