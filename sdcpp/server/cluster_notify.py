"""LISTEN/NOTIFY on the shared PostgreSQL queue: processes learn of a queued job, a running
job's progress and a cancel request the moment it is committed, instead of at their next poll.

Triggers (``TRIGGERS``, installed by ``ClusterStore``) send on one channel per schema,
``sdcpp_<schema>`` (two sdcpp instances in one database, as the tests' schemas, do not hear
each other), these payloads:

- ``queued``: a job became queued (created, re-queued after a crash or a lost lease): idle
  workers claim at once instead of at their next 1 s poll;
- ``live <job id>``: a worker wrote a job's progress (or its end) to ``job_live``: API
  processes relay it at once;
- ``cancel <job id>``: a cancel request for a running job was written: its worker stops it at
  the engine's next step, whichever API process took the request.

Notifications are a wake-up, never the data: what they announce is read from the tables, so
one lost while a connection is down costs only latency: the polls stay as the fallback
(``Listener.connected`` tells how often they must run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .pgstore import DatabaseUnavailable, _psycopg, redact

logger = logging.getLogger(__name__)

__all__ = ["TRIGGERS", "Listener"]

_CHANNEL = "'sdcpp_' || current_schema()"

TRIGGERS = (
    f"""CREATE OR REPLACE FUNCTION sdcpp_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify({_CHANNEL}, 'queued');
        RETURN NULL;
    END $$""",
    # 'cancel' only when the request is new: the worker's own progress writes keep the flag
    # set, and must not wake it again and again.
    f"""CREATE OR REPLACE FUNCTION sdcpp_notify_live() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.cancel_requested AND (TG_OP = 'INSERT' OR NOT OLD.cancel_requested) THEN
            PERFORM pg_notify({_CHANNEL}, 'cancel ' || NEW.job_id);
        ELSE
            PERFORM pg_notify({_CHANNEL}, 'live ' || NEW.job_id);
        END IF;
        RETURN NULL;
    END $$""",
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'jobs_notify_queued'
                       AND tgrelid = 'jobs'::regclass) THEN
            CREATE TRIGGER jobs_notify_queued AFTER INSERT OR UPDATE OF status ON jobs
                FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION sdcpp_notify_queued();
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'job_live_notify'
                       AND tgrelid = 'job_live'::regclass) THEN
            CREATE TRIGGER job_live_notify AFTER INSERT OR UPDATE ON job_live
                FOR EACH ROW EXECUTE FUNCTION sdcpp_notify_live();
        END IF;
    END $$""",
)

RETRY_SECONDS = 1.0  # between reconnects while the database is away


class Listener:
    """A thread on a connection of its own that LISTENs and calls ``on_notify(kind, job_id)``
    (``job_id`` is '' for ``queued``) for every notification; reconnects by itself."""

    def __init__(self, url: str, on_notify: Callable[[str, str], None]) -> None:
        self.url = url
        self.on_notify = on_notify
        self.connected = threading.Event()
        self._halt = threading.Event()
        self._pg = _psycopg()
        self._thread = threading.Thread(target=self._loop, name="sdcpp-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self._listen()
            except (self._pg.Error, DatabaseUnavailable, OSError) as exc:
                if self.connected.is_set():
                    logger.warning("lost LISTEN on %s (%s): polling", redact(self.url), exc)
                self.connected.clear()
                self._halt.wait(RETRY_SECONDS)

    def _listen(self) -> None:
        sql = self._pg.sql
        with self._pg.connect(
            self.url, autocommit=True, connect_timeout=5, application_name="sdcpp-listen"
        ) as conn:
            row = conn.execute("SELECT current_schema()").fetchone()
            channel = f"sdcpp_{row[0] if row else 'public'}"
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.connected.set()
            logger.debug("listening on %s", channel)
            while not self._halt.is_set():
                # a bounded wait: the halt flag is seen within a second
                for note in conn.notifies(timeout=1.0):
                    kind, _, job_id = note.payload.partition(" ")
                    try:
                        self.on_notify(kind, job_id)
                    except Exception:  # a handler's bug must not cost the listener
                        logger.exception("notification %r not handled", note.payload)
