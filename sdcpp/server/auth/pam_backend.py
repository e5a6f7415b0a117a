"""Password checks against the system through PAM (python-pam).

PAM calls block (pam_unix sleeps about 2 s after a failure on purpose), so they run on a small
thread pool of their own, never on the event loop or Starlette's shared pool; a burst beyond
``MAX_WAITING`` is refused rather than queued without end. Each call gets a new
``PamAuthenticator``: one instance keeps per-conversation state and is not thread-safe.

The server process must be allowed to check passwords: as root, or (for pam_unix) a member of
the ``shadow`` group. The role comes from group membership: members of ``admin_group`` are
admins.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import threading
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

WORKERS = 4
MAX_WAITING = 32


class PamBusy(Exception):
    """Too many password checks in flight."""


def groups_of(username: str) -> set[str]:
    try:
        gid = pwd.getpwnam(username).pw_gid
        ids = os.getgrouplist(username, gid)
    except (KeyError, OSError):
        return set()
    names = set()
    for gid in ids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _check(service: str, username: str, password: str) -> bool:
    import pam  # imported here: the module loads libpam through ctypes

    authenticator = pam.PamAuthenticator()
    # resetcreds=False: we only check the password (and the account, via pam_acct_mgmt); no
    # session or credentials are established for the server process.
    ok = bool(authenticator.authenticate(username, password, service=service, resetcreds=False))
    if not ok:
        # the reason ("Authentication failure", "User not known...") never includes the password
        logger.info("PAM refused %s for service %s: %s", username, service, authenticator.reason)
    return ok


class PamBackend:
    def __init__(self, service: str, admin_group: str) -> None:
        self.service = service
        self.admin_group = admin_group
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sdcpp-pam")
        self._waiting = 0
        self._lock = threading.Lock()

    async def authenticate(self, username: str, password: str) -> bool:
        with self._lock:
            if self._waiting >= MAX_WAITING:
                raise PamBusy("too many logins at once; try again shortly")
            self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, _check, self.service, username, password)
        finally:
            with self._lock:
                self._waiting -= 1

    def is_admin(self, username: str) -> bool:
        return self.admin_group in groups_of(username)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
