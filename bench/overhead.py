"""Warm-job rows (#18): our queue's overhead over the engine's time, what of it is durable state
sd-server keeps none of, and the row a user feels, a warm job's end-to-end wall against
sd-server's (goal <= 1.01x).

Ours: submit -> completed event -> the PNG fetched (the image in the client's hands, as
sd-server's txt2img answer carries it). Theirs: ``POST /sdapi/v1/txt2img`` answered. Same model,
size, steps, seed, sampler, cfg and threads; rounds interleaved.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import rows
from .table import Row, fmt, verdict

if TYPE_CHECKING:
    from .run import Bench
    from .server import Servers


def overhead(bench: Bench, s: Servers) -> None:
    """(a) submit -> output ready, minus the engine's own generate time, on warm servers."""
    from .server import settle

    assert s.ours is not None and s.events is not None
    ours, theirs, ours_wall, theirs_wall = [], [], [], []
    for _ in range(6 if bench.quick else 15):
        settle()
        started = time.perf_counter()
        job_id = s.submit(s.ours.url, 4)
        done = s.events.wait([job_id])
        png = s.http.get(f"{s.ours.url}/api/queue/job/{job_id}/output/image_0.png")
        png.raise_for_status()
        ours_wall.append(time.perf_counter() - started)  # the image in the client's hands
        ours.append(done - started - s.job(s.ours.url, job_id)["result"]["generation_time"])
        assert s.theirs is not None
        since = len(s.theirs.lines)
        settle()
        started = time.perf_counter()
        s.txt2img(4)
        wall = time.perf_counter() - started
        theirs_wall.append(wall)
        theirs.append(wall - s.engine_time(since))
    ours_ms, theirs_ms = [x * 1000 for x in ours], [x * 1000 for x in theirs]
    med_ours, med_theirs = statistics.median(ours_ms), statistics.median(theirs_ms)
    bench.add(
        Row(
            "server: submit -> output ready minus engine generate time (64x64 4 steps)",
            fmt(ours_ms, "ms", 1),
            fmt(theirs_ms, "ms", 1),
            f"{med_ours - med_theirs:+.1f} ms",
            "<= 20 ms and <= sd-server",
            verdict(med_ours <= 20 and med_ours <= med_theirs),
        )
    )
    writes, commits = durable_costs(s.data_dir, png.content, len(ours))
    write, commit = statistics.median(writes), statistics.median(commits)
    bench.add(
        Row(
            "server: of that, durable state sd-server keeps none of (output written atomically "
            "with fsync after the same pause; job insert, claim and finish committed to SQLite)",
            f"{fmt(writes, 'ms', 2)} + {fmt(commits, 'ms', 2)}",
            "none: its image is only in the response",
            f"ours without them {med_ours - write - commit:.1f} ms vs {med_theirs:.1f} ms",
            "info",
            "-",
        )
    )
    bench.add(rows.warm_job_row("server: 64x64 4 steps", ours_wall, theirs_wall))


def durable_costs(data_dir: Path, png: bytes, n: int) -> tuple[list[float], list[float]]:
    """Milliseconds per job of our path's durable writes, made here with the server's own code
    on the server's disk: ``png`` (an output of ours) written as the worker writes outputs, and
    one job's three SQLite transactions as the job service makes them."""
    from sdcpp._safetensors import atomic_write
    from sdcpp.server.store import JobStore

    from .server import PROMPT, settle

    probe = Path(tempfile.mkdtemp(prefix="durable-", dir=data_dir))
    store = JobStore(probe / "jobs.db")
    params = {"prompt": PROMPT, "width": 64, "height": 64, "steps": 4, "seed": 42}
    writes, commits = [], []
    try:
        for i in range(n):
            settle()
            started = time.perf_counter()
            atomic_write(probe / f"image_{i}.png", [png])
            writes.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            job = store.create("txt2img", params)
            store.claim_next("bench")
            store.finish(job.id, "completed", outputs=["image_0.png"], result={"seeds": [42]})
            commits.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
        shutil.rmtree(probe, ignore_errors=True)
    return writes, commits
