"""Path safety, stable ids and the directory walk.

Everything a client names (an id, a relative path) must end up inside the models root, even
after symlinks are followed: ``..`` components and absolute paths are refused before touching
the filesystem. Symlinks inside the models dir are made by its operator (the usual way to
share one models folder between tools), so for reading they may point anywhere readable;
every write (uploads, conversions) checks its own target and refuses to follow links.
"""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ModelNotFoundError, UnsafePathError
from .model_types import TYPE_INFO, WEIGHT_EXTENSIONS, ModelType

logger = logging.getLogger(__name__)


def normalize_relpath(relpath: str) -> str:
    """POSIX, NFC-normalised relative path; refuses anything that could leave the root.

    Backslashes count as separators so ``..\\x`` is refused on every platform, and NFC makes
    names read from macOS (which stores NFD) give the same id as elsewhere.
    """
    if not relpath or "\x00" in relpath:
        raise UnsafePathError(f"invalid model path {relpath!r}")
    text = unicodedata.normalize("NFC", relpath.replace("\\", "/"))
    pure = PurePosixPath(text)
    if pure.is_absolute() or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(f"absolute paths are not allowed: {relpath!r}")
    parts = [part for part in pure.parts if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"'..' is not allowed in a model path: {relpath!r}")
    if not parts:
        raise UnsafePathError(f"invalid model path {relpath!r}")
    return "/".join(parts)


def model_id(relpath: str) -> str:
    """Stable id: first 16 hex digits of sha1(normalised POSIX relative path).

    It depends only on where the file lies under the root, so it survives restarts, refreshes
    and content changes, and moving the whole models dir elsewhere. 64 bits make a collision
    among the files of one models dir practically impossible.
    """
    return hashlib.sha1(normalize_relpath(relpath).encode("utf-8")).hexdigest()[:16]


def is_inside(root_real: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def resolve_inside(root_real: str, relpath: str) -> Path:
    """Real path of ``relpath`` under the root; the file must exist.

    The name cannot leave the root (``normalize_relpath``); an operator's symlink may.
    """
    rel = normalize_relpath(relpath)
    candidate = os.path.join(root_real, *rel.split("/"))
    real = os.path.realpath(candidate)
    if not os.path.isfile(real):
        raise ModelNotFoundError(f"no model file {rel!r}")
    return Path(real)


@dataclass(frozen=True, slots=True)
class FoundFile:
    relpath: str  # normalised POSIX, relative to the root
    type: ModelType | None  # None: a root-level file, classified by detection
    size: int
    mtime: float
    mtime_ns: int


def scan(root: Path) -> Iterator[FoundFile]:
    """Every model file under the typed folders, plus weights files directly in the root.

    Hidden names (dot files, our own ``.name.tmp`` temp files) are skipped, as are files with an
    extension their folder does not accept. A typed folder may itself be a symlink; symlinked
    directories below it are not followed (no loops, no duplicates); symlinked files are listed
    wherever their target lies.
    """
    root_real = os.path.realpath(root)
    if not os.path.isdir(root_real):
        return
    seen_dirs: set[tuple[int, int]] = set()
    for mtype, info in TYPE_INFO.items():
        for folder in info.folders:
            top = os.path.join(root_real, folder)
            if not os.path.isdir(top) or not _first_visit(top, seen_dirs):
                continue
            yield from _walk(root_real, top, mtype, info.extensions)
    yield from _root_files(root_real)


def _first_visit(path: str, seen: set[tuple[int, int]]) -> bool:
    # On a case-insensitive filesystem "vae" and "VAE" are one folder: scan it once.
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _walk(root_real: str, top: str, mtype: ModelType, exts: tuple[str, ...]) -> Iterator[FoundFile]:
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            logger.warning("cannot list %s: %s", current, exc)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif _has_ext(entry.name, exts):
                found = _found(root_real, entry, mtype)
                if found is not None:
                    yield found


def _root_files(root_real: str) -> Iterator[FoundFile]:
    try:
        entries = sorted(os.scandir(root_real), key=lambda e: e.name)
    except OSError as exc:
        logger.warning("cannot list %s: %s", root_real, exc)
        return
    for entry in entries:
        # Text files in the root can't be classified (no detection for them): ignored.
        if not entry.name.startswith(".") and _has_ext(entry.name, WEIGHT_EXTENSIONS):
            found = _found(root_real, entry, None)
            if found is not None:
                yield found


def _has_ext(name: str, exts: tuple[str, ...] | frozenset[str]) -> bool:
    return os.path.splitext(name)[1].lower() in exts


def _found(root_real: str, entry: os.DirEntry[str], mtype: ModelType | None) -> FoundFile | None:
    try:
        if not entry.is_file():  # follows a symlink; drops broken links and sockets
            return None
        st = entry.stat()
    except OSError as exc:  # vanished between listing and stat, or unreadable
        logger.debug("skipping %s: %s", entry.path, exc)
        return None
    rel = os.path.relpath(entry.path, root_real).replace(os.sep, "/")
    return FoundFile(normalize_relpath(rel), mtype, st.st_size, st.st_mtime, st.st_mtime_ns)
