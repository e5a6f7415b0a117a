"""``SqliteStore``: the plumbing the job store and the auth store share.

``SqlStore`` is the contract their queries are written against, whatever the database: a
``_write()`` transaction yielding a DB-API cursor that takes ``?`` placeholders, ``_read()``,
``_clock`` and ``_lock``. ``SqliteStore`` implements it here, ``pgstore.PgStore`` on PostgreSQL.

One connection per store, guarded by one lock (``check_same_thread=False`` is safe because of
it); ``isolation_level=None`` with explicit ``BEGIN IMMEDIATE``/``COMMIT``, so every write
transaction is exactly one method call and a read-then-write cannot interleave with another
process's write. Both stores live in the same WAL database file (``sdcpp.db``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, Self

logger = logging.getLogger(__name__)


class Cursor(Protocol):
    """What the queries use of a DB-API cursor (``sqlite3.Cursor`` is one)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Cursor: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlStore:
    """A store's plumbing, as its queries see it (see the module docstring)."""

    NAME = "store"  # how errors name a closed one
    # Whether other processes may hold leases in this database; SQLite: no, the data dir lock
    # (datadir.py) makes this process its only server.
    shared = False
    _clock: Callable[[], float]
    _lock: threading.Lock

    @property
    def location(self) -> str:
        """Where the data lives, for messages (never a password)."""
        raise NotImplementedError

    def _open(self) -> None:
        """``_prepare()`` the connection, then ``_migrate()``; closed again if either fails."""
        try:
            self._prepare()
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> None:
        """Connection settings, before any table is touched."""

    def _serialize(self, cur: Cursor) -> None:
        """Make this transaction exclusive among those that call this (schema upgrades,
        inserts that check first); SQLite's BEGIN IMMEDIATE already does."""

    def _migrate(self) -> None:
        """Create or upgrade this store's tables (in a ``_write()`` transaction)."""
        raise NotImplementedError

    def _write(self) -> contextlib.AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore(SqlStore):
    """Opens ``path`` (WAL, NORMAL sync, foreign keys), then calls ``_migrate()``."""

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
        self._open()

    def _prepare(self) -> None:
        conn = self._connection()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":  # e.g. a network file system without shared memory
            logger.warning("%s: SQLite refused WAL mode (journal_mode=%s)", self.path, mode)
        # NORMAL under WAL never corrupts the file and a crash of *this process* loses
        # nothing (committed pages are in the WAL, handed to the OS); only a power loss or
        # kernel crash can roll back the last few commits. FULL would fsync every write.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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
