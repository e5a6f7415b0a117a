"""The registry: an in-memory index of a models directory, refreshed on request."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import InvalidArgument
from .entries import SHORT_HASH_LEN, DirectoryStatus, ModelEntry, Page, RefreshReport
from .errors import AmbiguousModelError, ModelNotFoundError, RegistryError
from .hashing import HashCache, Progress, sha256_file
from .model_types import TYPE_INFO, ModelType, type_from_detection
from .paths import FoundFile, model_id, normalize_relpath, resolve_inside, scan

logger = logging.getLogger(__name__)

Detector = Callable[[Path], Any]
SortBy = Literal["name", "size", "date", "type"]
# A file dropped into the models dir shows up without a restart: listings and lookup misses
# rescan, at most this often (a scan of 1,000 files costs a few ms, see bench/RESULTS.md).
RESCAN_INTERVAL_S = 2.0
NO_ARCHITECTURE = "none"  # presets and prompt templates
UNKNOWN_ARCHITECTURE = "unknown"


@dataclass(frozen=True, slots=True)
class _Detected:
    detection: Any  # the detector's result; None when it failed
    architecture: str
    error: str | None


@dataclass(frozen=True, slots=True)
class _Record:
    entry: ModelEntry
    mtime_ns: int  # the float mtime loses precision; change detection needs the exact value
    detected: _Detected | None  # None for text files


def _default_detector(path: Path) -> Any:
    from ..detect import detect  # lazy: listing must work even where detection is unavailable

    return detect(path)


class ModelRegistry:
    """Index of ``models_dir``: typed subfolders plus root-level files classified by detection.

    Thread-safe: one lock guards the index and is never held while scanning, detecting or
    hashing; refreshes run one at a time. Nothing is scanned until the first call that needs
    the index (or an explicit ``refresh()``).
    """

    def __init__(
        self,
        models_dir: str | os.PathLike[str],
        data_dir: str | os.PathLike[str] | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.root = Path(models_dir).expanduser().absolute()
        self._detector = detector or _default_detector
        self._hashes = HashCache(data_dir)  # data_dir None: digests live only in memory
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._detections: dict[tuple[str, int, int], _Detected] = {}
        self._hash_locks: dict[str, threading.Lock] = {}
        self._scanned = False
        self._scanned_at = 0.0  # time.monotonic() of the last completed scan
        self._background: threading.Thread | None = None

    # -- scanning ---------------------------------------------------------------------------

    def refresh(self) -> RefreshReport:
        """Rescan the models dir; report what appeared, changed and disappeared."""
        with self._refresh_lock:
            records: dict[str, _Record] = {}
            for found in scan(self.root):
                record = self._record_for(found)
                records[record.entry.id] = record
            live = {(r.entry.path, r.entry.size, r.mtime_ns) for r in records.values()}
            with self._lock:
                old, self._records, self._scanned = self._records, records, True
                self._scanned_at = time.monotonic()
                self._detections = {k: v for k, v in self._detections.items() if k in live}
            if self.root.is_dir():  # an unmounted models dir must not wipe every digest
                self._hashes.forget_except({r.entry.path for r in records.values()})
            return _diff(old, records)

    def _ensure_scanned(self) -> None:
        if not self._scanned:
            self.refresh()

    def _rescan_if_stale(self, wait: bool = True) -> bool:
        """Rescan unless the last scan is under RESCAN_INTERVAL_S old; True if it rescanned.

        ``wait=False`` rescans in a background thread and answers from the index as it is: a
        scan of 1,000 files takes far longer than a listing may (bench/registry_listing.py).
        """
        if self._scanned and time.monotonic() - self._scanned_at < RESCAN_INTERVAL_S:
            return False
        if wait or not self._scanned:
            self.refresh()
            return True
        with self._lock:
            if self._background is None or not self._background.is_alive():
                self._background = threading.Thread(
                    target=self.refresh, name="sdcpp-registry-rescan", daemon=True
                )
                self._background.start()
        return False

    def _record_for(self, found: FoundFile) -> _Record:
        detected = None
        if found.type is None or not found.type.is_text:
            detected = self._detect_cached(found)
        mtype = found.type
        if mtype is None:  # root-level file: its content decides
            mtype = type_from_detection(detected.detection if detected else None)
        entry = ModelEntry(
            id=model_id(found.relpath),
            name=PurePosixPath(found.relpath).stem,
            type=mtype,
            architecture=detected.architecture if detected else NO_ARCHITECTURE,
            size=found.size,
            mtime=found.mtime,
            path=found.relpath,
            sha256=self._hashes.get(found.relpath, found.size, found.mtime_ns),
            error=detected.error if detected else None,
        )
        return _Record(entry, found.mtime_ns, detected)

    def _detect_cached(self, found: FoundFile) -> _Detected:
        key = (found.relpath, found.size, found.mtime_ns)
        with self._lock:
            cached = self._detections.get(key)
        if cached is None:
            cached = self._detect(self.root / found.relpath)
            with self._lock:
                self._detections[key] = cached
        return cached

    def _detect(self, path: Path) -> _Detected:
        try:
            detection = self._detector(path)
        except Exception as exc:  # a broken file must not break the scan
            logger.warning("cannot detect the architecture of %s: %s", path, exc)
            return _Detected(None, UNKNOWN_ARCHITECTURE, f"{type(exc).__name__}: {exc}")
        architecture = getattr(detection, "id", None) or UNKNOWN_ARCHITECTURE
        return _Detected(detection, str(architecture), None)

    # -- lookups ----------------------------------------------------------------------------

    def get(self, id_or_name: str, type: ModelType | str | None = None) -> ModelEntry:
        """By id, else relative path, else file stem or file name (must be unambiguous)."""
        self._ensure_scanned()
        try:
            return self._lookup(id_or_name, type)
        except ModelNotFoundError:
            if not self._rescan_if_stale():  # a miss may be a file added since the last scan
                raise
        return self._lookup(id_or_name, type)

    def _lookup(self, id_or_name: str, type: ModelType | str | None) -> ModelEntry:
        wanted = _parse_type(type)
        with self._lock:
            record = self._records.get(id_or_name)
            entries = [r.entry for r in self._records.values()]
        if record is not None:
            return record.entry
        if wanted is not None:
            entries = [e for e in entries if e.type & wanted]
        relpath = normalize_relpath(id_or_name)
        matches = [e for e in entries if e.path == relpath]
        if not matches:
            matches = [e for e in entries if id_or_name in (e.name, PurePosixPath(e.path).name)]
        if len(matches) > 1:
            paths = ", ".join(sorted(e.path for e in matches))
            raise AmbiguousModelError(f"{id_or_name!r} matches several models: {paths}")
        if not matches:
            raise ModelNotFoundError(f"no model {id_or_name!r}")
        return matches[0]

    def resolve(self, id_or_relpath: str) -> Path:
        """Real path of a model (by id) or of any file under the root (by relative path).

        Refuses ``..``, absolute paths and symlinks whose target lies outside the root.
        """
        self._ensure_scanned()
        with self._lock:
            record = self._records.get(id_or_relpath)
        relpath = record.entry.path if record is not None else id_or_relpath
        return resolve_inside(os.path.realpath(self.root), relpath)

    def by_type(self, type: ModelType | str) -> list[ModelEntry]:
        return list(self.list(type=type, limit=None).items)

    def detection(self, id_or_name: str) -> Any:
        """The detection of a model file; None for text files and files detection failed on."""
        entry = self.get(id_or_name)
        with self._lock:
            record = self._records.get(entry.id)
        if record is None or record.detected is None:
            return None
        return record.detected.detection

    # -- hashing ----------------------------------------------------------------------------

    def sha256(self, id_or_name: str, progress: Progress | None = None) -> str:
        """SHA-256 of the model file, from the cache while its size and mtime are unchanged."""
        entry = self.get(id_or_name)
        path = self.resolve(entry.id)
        with self._hash_lock(entry.path):  # a second caller waits, then reads the cache
            before = os.stat(path)
            digest = self._hashes.get(entry.path, before.st_size, before.st_mtime_ns)
            if digest is None:
                digest = sha256_file(path, progress)
                after = os.stat(path)
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    raise RegistryError(f"{entry.path} changed while it was being hashed")
                self._hashes.put(entry.path, before.st_size, before.st_mtime_ns, digest)
        self._remember_hash(entry.id, before.st_size, before.st_mtime_ns, digest)
        return digest

    def short_hash(self, id_or_name: str) -> str:
        """A1111's short model hash: the first 10 hex digits of the SHA-256."""
        return self.sha256(id_or_name)[:SHORT_HASH_LEN]

    def _hash_lock(self, relpath: str) -> threading.Lock:
        with self._lock:
            return self._hash_locks.setdefault(relpath, threading.Lock())

    def _remember_hash(self, entry_id: str, size: int, mtime_ns: int, digest: str) -> None:
        with self._lock:
            record = self._records.get(entry_id)
            # Only if the index still describes the file that was hashed.
            if record is not None and (record.entry.size, record.mtime_ns) == (size, mtime_ns):
                entry = replace(record.entry, sha256=digest)
                self._records[entry_id] = replace(record, entry=entry)

    # -- layout and statistics --------------------------------------------------------------

    def directories(self) -> list[DirectoryStatus]:
        """Each type's canonical folder (and its subfolders), plus aliases that exist."""
        out: list[DirectoryStatus] = []
        for mtype, info in TYPE_INFO.items():
            canonical = info.folders[0]
            folders = [canonical, *(f"{canonical}/{sub}" for sub in info.subfolders)]
            folders += [alias for alias in info.folders[1:] if (self.root / alias).is_dir()]
            for folder in folders:
                path = self.root / folder
                out.append(DirectoryStatus(mtype, folder, path, path.is_dir()))
        return out

    def ensure_layout(self) -> list[str]:
        """Create the root and every canonical typed folder; returns the folders created."""
        created: list[str] = []
        self.root.mkdir(parents=True, exist_ok=True)
        for status in self.directories():
            if not status.exists:
                status.path.mkdir(parents=True, exist_ok=True)
                created.append(status.folder)
        return created

    def stats(self) -> dict[str, Any]:
        """Counts and bytes, in total and per type (every type listed, zeros included)."""
        self._ensure_scanned()
        with self._lock:
            entries = [r.entry for r in self._records.values()]
        by_type = {t.slug: {"count": 0, "bytes": 0} for t in TYPE_INFO}
        for e in entries:
            by_type[e.type.slug]["count"] += 1
            by_type[e.type.slug]["bytes"] += e.size
        total = {"count": len(entries), "bytes": sum(e.size for e in entries)}
        return {"total": total, "by_type": by_type}

    def __len__(self) -> int:
        self._ensure_scanned()
        with self._lock:
            return len(self._records)

    # Last: a method named `list` shadows the builtin in annotations of later class members.
    def list(
        self,
        type: ModelType | str | None = None,
        search: str | None = None,
        sort_by: SortBy = "name",
        sort_order: Literal["asc", "desc"] = "asc",
        limit: int | None = 50,
        page: int = 1,
    ) -> Page:
        """Filter (type, case-insensitive search terms), sort, then paginate (pages from 1)."""
        if sort_by not in _SORT_KEYS:
            raise InvalidArgument(f"sort_by must be one of {sorted(_SORT_KEYS)}, not {sort_by!r}")
        if sort_order not in ("asc", "desc"):
            raise InvalidArgument(f"sort_order must be 'asc' or 'desc', not {sort_order!r}")
        if page < 1 or (limit is not None and limit < 1):
            raise InvalidArgument("page and limit must be at least 1")
        wanted = _parse_type(type)
        with self._lock:
            empty = not self._records
        self._rescan_if_stale(wait=empty)  # an empty index: the user is waiting for a first model
        with self._lock:
            entries = [r.entry for r in self._records.values()]
        if wanted is not None:
            entries = [e for e in entries if e.type & wanted]
        if search:
            entries = [e for e in entries if _matches(e, search)]
        entries.sort(key=_SORT_KEYS[sort_by], reverse=sort_order == "desc")
        start = (page - 1) * (limit or 0)
        items = entries[start : start + limit] if limit else entries
        return Page(tuple(items), len(entries), page, limit)


_SORT_KEYS: dict[str, Callable[[ModelEntry], Any]] = {
    "name": lambda e: (e.name.casefold(), e.path),
    "size": lambda e: (e.size, e.path),
    "date": lambda e: (e.mtime, e.path),
    "type": lambda e: (int(e.type), e.name.casefold(), e.path),
}


def _parse_type(value: ModelType | str | None) -> ModelType | None:
    if value is None:
        return None
    try:
        return ModelType.parse(value)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


def _matches(entry: ModelEntry, search: str) -> bool:
    haystack = f"{entry.name}\n{entry.path}\n{entry.architecture}".casefold()
    return all(term in haystack for term in search.casefold().split())


def _diff(old: dict[str, _Record], new: dict[str, _Record]) -> RefreshReport:
    found = [r.entry for i, r in new.items() if i not in old]
    removed = [r.entry for i, r in old.items() if i not in new]
    updated = [
        r.entry
        for i, r in new.items()
        if i in old and (old[i].entry.size, old[i].mtime_ns) != (r.entry.size, r.mtime_ns)
    ]
    return RefreshReport(tuple(found), tuple(updated), tuple(removed), len(new))
