"""A converter child without the engine, for ``ConvertRunner(target=fake_convert)``.

It runs in the real spawned child process (so cancel, crash and cleanup are the real ones) and
steers by the input's file stem: ``slow*`` writes a partial file and waits to be killed,
``crash*`` aborts like a failed GGML_ASSERT, ``fail*`` reports an error; anything else writes a
small file in three "tensors".
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PAYLOAD = b"GGUF" + b"\x00" * 60  # not a loadable model: the registry lists it as unknown


def fake_convert(conn: Connection, params: dict[str, Any], staged: str) -> None:
    stem = Path(params["input"]).stem
    with open(staged, "wb") as f:
        f.write(PAYLOAD[:8])  # a partial file, as the engine leaves one mid-write
    if stem.startswith("slow"):
        conn.send({"type": "progress", "step": 1, "total": 3})
        while True:
            time.sleep(0.05)
    if stem.startswith("crash"):
        os.abort()
    if stem.startswith("fail"):
        conn.send({"type": "failed", "error": "unsupported tensor layout", "code": "X"})
        return
    for step in (1, 2, 3):
        conn.send({"type": "progress", "step": step, "total": 3})
    with open(staged, "wb") as f:
        f.write(PAYLOAD)
    conn.send({"type": "converted"})
