"""Honest progress from the real worker and engine: a job's own SSE stream shows its phases in
order and a fraction that never goes back, and closes after the final state (synthetic model).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the e2e helpers live beside this file
from test_serve import REQUEST, Server, data_dir, free_port  # noqa: F401 (fixture)


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:  # noqa: F811
    srv = Server(data_dir).start()
    try:
        yield srv
    finally:
        srv.stop()


def job_events(server: Server, job_id: str, timeout: float = 300) -> list[dict[str, Any]]:
    """Every job_update of ``/api/events/{job_id}``, which must end by itself."""
    updates = []
    started = time.monotonic()
    with httpx.stream("GET", f"{server.url}/api/events/{job_id}", timeout=timeout) as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name == "job_update":
                updates.append(json.loads(line[5:]))
            assert time.monotonic() - started < timeout, "the stream did not close"
    return updates


def test_phases_in_order_monotonic_progress_and_the_stream_closes(server: Server) -> None:
    body = {**REQUEST, "steps": 4, "batch_count": 2}
    job_id = server.post("/api/generate/text2img", body).json()["job_id"]
    updates = job_events(server, job_id)
    assert updates[-1]["status"] == "completed", updates[-1]
    fractions = [u["progress"] for u in updates]
    assert fractions == sorted(fractions), fractions
    assert all(f < 1.0 for f in fractions[:-1]) and fractions[-1] == 1.0
    phases = [u["phase"] for u in updates]
    seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert seen[-1] == "done" and "sampling" in seen and "loading" in seen, seen
    order = ["queued", "starting", "loading", "sampling", "decoding", "saving", "done"]
    assert seen == [p for p in order if p in seen], seen  # never back to an earlier phase
    sampling = [(u["step"], u["total_steps"]) for u in updates if u["phase"] == "sampling"]
    assert sampling[-1] == (8, 8)  # both images' steps, summed
    final = server.get(f"/api/queue/job/{job_id}").json()
    assert (final["phase"], final["current_step"], final["total_steps"]) == ("done", 8, 8)
    # a finished job's stream: its final state, then the end
    again = job_events(server, job_id, timeout=10)
    assert [u["status"] for u in again] == ["completed"]
