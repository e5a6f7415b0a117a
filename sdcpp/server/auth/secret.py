"""The server's signing secret: ``secret.key`` in the data dir, 64 random bytes, mode 0600.

Created on first start by writing a private temp file and hard-linking it into place: ``link``
fails if the name exists, so two processes starting at once agree on one secret (the loser
reads the winner's). Deleting the file voids every token and signed URL at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

SECRET_BYTES = 64


def load_or_create_secret(data_dir: Path) -> bytes:
    path = Path(data_dir) / "secret.key"
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s is readable by others (mode %o): run chmod 600 on it", path, mode)
    secret = bytes.fromhex(path.read_text().strip())
    if len(secret) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes: delete it to make a new one")
    return secret


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(SECRET_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use theirs
            os.link(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key per use (JWT signing, output URLs), so no signature of one kind can ever
    be replayed as the other."""
    return hmac.new(secret, f"sdcpp {purpose} v1".encode(), hashlib.sha256).digest()
