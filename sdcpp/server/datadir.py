"""``DataDirLock``: one server per data dir, enforced by the operating system.

Two servers on one data dir would both "recover" and run the same jobs. The first server takes
an exclusive ``flock`` on ``{data_dir}/server.lock`` and holds it for its whole life; a second
one fails at start with the holder's pid. The kernel drops the lock when the holder dies in any
way (kill -9 included), so a stale file never blocks a restart, and while it is held the job
store may treat every lease it finds from an earlier process as dead (``JobStore.recover``).
With PostgreSQL (many workers) the lease expiry alone decides; this lock guards only a dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["DataDirBusy", "DataDirLock"]

LOCK_NAME = "server.lock"


class DataDirBusy(RuntimeError):
    """Another live process holds the data dir."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"data dir {data_dir} is in use by another sdcpp server ({holder}); stop it "
            "or start this one with a different --data-dir"
        )
        self.pid = pid


class DataDirLock:
    """Hold with ``acquire()`` ... ``release()`` (or as a context manager)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Not inheritable (Python's default): the worker children must not keep it alive.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirBusy(self.data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # The pid is for the message above only; the lock itself is what counts.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
