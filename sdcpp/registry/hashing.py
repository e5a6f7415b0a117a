"""Streamed SHA-256 of model files and its on-disk cache.

Hashing a 7 GB checkpoint takes seconds to minutes, so digests are computed only on request and
remembered in ``{data_dir}/hash_cache.json`` under the file's relative path together with the
size and ``mtime_ns`` it had when hashed: a digest is reused only while both still match.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .._safetensors import atomic_write

logger = logging.getLogger(__name__)

# Large reads keep the per-call overhead negligible; hashlib releases the GIL while digesting,
# so other threads keep running. Measured on a 1 GiB cached file (SHA-NI CPU): 1-8 MiB chunks all
# ~1.57 GiB/s, like hashlib.file_digest and `openssl dgst`, 3.4x GNU sha256sum (no SHA-NI use).
CHUNK_BYTES = 8 * 1024 * 1024
CACHE_NAME = "hash_cache.json"
_CACHE_VERSION = 1

Progress = Callable[[int, int], object]  # (bytes done, bytes total)


def sha256_file(path: str | os.PathLike[str], progress: Progress | None = None) -> str:
    """Hex SHA-256 of a file, read in CHUNK_BYTES pieces into one reused buffer."""
    import hashlib  # lazily (~4 ms with OpenSSL): a cached digest needs no hashing

    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    # Unbuffered: readinto goes straight from the kernel into our buffer, no second copy.
    with open(path, "rb", buffering=0) as f:
        total = os.fstat(f.fileno()).st_size
        _advise_sequential(f.fileno())
        done = 0
        while n := f.readinto(buffer):
            digest.update(view[:n])
            done += n
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def _advise_sequential(fd: int) -> None:
    # Lets the kernel read ahead aggressively on a cold cache; a no-op where unsupported.
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


class HashCache:
    """relpath -> (size, mtime_ns, sha256), persisted atomically when ``data_dir`` is given.

    Thread-safe. Several processes sharing one data dir may lose each other's latest entry
    (last writer wins); that costs a re-hash, never a wrong digest, because every entry carries
    the size and mtime it was computed for.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None) -> None:
        self._file = Path(data_dir) / CACHE_NAME if data_dir is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, int, str]] = self._load()

    def get(self, relpath: str, size: int, mtime_ns: int) -> str | None:
        with self._lock:
            entry = self._entries.get(relpath)
        if entry is not None and entry[0] == size and entry[1] == mtime_ns:
            return entry[2]
        return None

    def put(self, relpath: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self._lock:
            self._entries[relpath] = (size, mtime_ns, sha256)
            self._save_locked()

    def forget_except(self, keep: set[str]) -> None:
        """Drop entries of files that no longer exist (saved with the next ``put``)."""
        with self._lock:
            for relpath in set(self._entries) - keep:
                del self._entries[relpath]

    def _load(self) -> dict[str, tuple[int, int, str]]:
        if self._file is None or not self._file.exists():
            return {}
        try:
            raw = json.loads(self._file.read_text(encoding="utf-8"))
            if raw.get("version") != _CACHE_VERSION:
                return {}
            return {
                str(rel): (int(e["size"]), int(e["mtime_ns"]), str(e["sha256"]))
                for rel, e in raw["files"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A damaged cache only costs re-hashing; never refuse to start over it.
            logger.warning("ignoring unreadable hash cache %s: %s", self._file, exc)
            return {}

    def _save_locked(self) -> None:
        if self._file is None:
            return
        files = {
            rel: {"size": size, "mtime_ns": mtime_ns, "sha256": sha}
            for rel, (size, mtime_ns, sha) in sorted(self._entries.items())
        }
        payload = json.dumps({"version": _CACHE_VERSION, "files": files}, indent=1)
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._file, [payload.encode("utf-8")])
        except OSError as exc:
            logger.warning("cannot write hash cache %s: %s", self._file, exc)


_default_cache: HashCache | None = None
_default_lock = threading.Lock()


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of any file, cached on disk by (absolute path, size, mtime) in
    ``$SDCPP_HASH_CACHE_DIR`` (default ``~/.cache/sdcpp``): a model is read once per version."""
    global _default_cache
    real = os.path.realpath(path)
    stat = os.stat(real)
    with _default_lock:
        if _default_cache is None:
            folder = os.environ.get("SDCPP_HASH_CACHE_DIR") or os.path.join(
                os.path.expanduser("~"), ".cache", "sdcpp"
            )
            os.makedirs(folder, exist_ok=True)
            _default_cache = HashCache(folder)
        cache = _default_cache
    digest = cache.get(real, stat.st_size, stat.st_mtime_ns)
    if digest is None:
        digest = sha256_file(real)
        cache.put(real, stat.st_size, stat.st_mtime_ns, digest)
    return digest
