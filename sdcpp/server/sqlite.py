"""``SqliteStore``: the plumbing the job store and the auth store share.

One connection per store, guarded by one lock (``check_same_thread=False`` is safe because of
it); ``isolation_level=None`` with explicit ``BEGIN IMMEDIATE``/``COMMIT``, so every write
transaction is exactly one method call and a read-then-write cannot interleave with another
process's write. Both stores live in the same WAL database file (``sdcpp.db``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

logger = logging.getLogger(__name__)


class SqliteStore:
    """Opens ``path`` (WAL, NORMAL sync, foreign keys), then calls ``_migrate()``."""

    NAME = "store"  # how errors name a closed one

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":  # e.g. a network file system without shared memory
                logger.warning("%s: SQLite refused WAL mode (journal_mode=%s)", self.path, mode)
            # NORMAL under WAL never corrupts the file and a crash of *this process* loses
            # nothing (committed pages are in the WAL, handed to the OS); only a power loss or
            # kernel crash can roll back the last few commits. FULL would fsync every write.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        """Create or upgrade this store's tables (in a ``_write()`` transaction)."""
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"the {self.NAME} is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        # IMMEDIATE takes the write lock up front, so a read-then-write (MAX(seq)+1, the queue
        # length check, claiming) cannot interleave with another process's write.
        with self._lock:
            conn = self._connection()
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also when COMMIT itself failed (busy past the timeout)
                    conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()
