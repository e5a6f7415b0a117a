"""Capability URLs for job outputs: ``...?exp=<unix time>&sig=<HMAC>``.

Output downloads are public in seed 004 so a browser can put them in ``<img>`` tags (which send
no Authorization header). With auth on, the job JSON hands out URLs signed with an expiry; the
signature covers the job id, the file name and the expiry, so it can't be moved to another file
or stretched. Expiries are rounded up to the hour: the URL of one image stays the same for a
while and browsers can cache it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from urllib.parse import quote

BUCKET = 3600


class OutputSigner:
    def __init__(self, key: bytes, ttl: int, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl = ttl
        self._clock = clock

    def _sig(self, job_id: str, name: str, exp: int) -> str:
        mac = hmac.new(self._key, f"{job_id}/{name}/{exp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def url(self, job_id: str, name: str) -> str:
        exp = math.ceil((self._clock() + self.ttl) / BUCKET) * BUCKET
        sig = self._sig(job_id, name, exp)
        return f"/api/queue/job/{job_id}/output/{quote(name)}?exp={exp}&sig={sig}"

    def verify(self, job_id: str, name: str, exp: str | None, sig: str | None) -> bool:
        if not exp or not sig or not exp.isdigit() or len(exp) > 12:
            return False
        if int(exp) < self._clock():
            return False
        return hmac.compare_digest(self._sig(job_id, name, int(exp)), sig)
