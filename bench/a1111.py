"""The A1111 dialect's row: ``POST /sdapi/v1/txt2img`` wall time per warm 64x64 job, ours
against upstream sd-server's own ``/sdapi/v1/txt2img``, with the very same request body
(same model, size, steps, seed, sampler, cfg and threads), interleaved round by round.

Ours is an ordinary queued job (stored, leased, its output written then read back and, as
``save_images`` is false, removed); sd-server answers from memory. Goal: <= 1.05x.
``/sdapi/v1/progress`` under load is measured with the other control-plane GETs
(``server.control_plane``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import rows

if TYPE_CHECKING:
    from .run import Bench
    from .server import Servers


def txt2img_wall(bench: Bench, s: Servers) -> None:
    from .server import CFG, PROMPT, SAMPLER, settle

    assert s.ours is not None and s.theirs is not None
    body = {"prompt": PROMPT, "width": 64, "height": 64, "steps": 4, "seed": 42}
    body |= {"cfg_scale": CFG, "sampler_name": SAMPLER}
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(6 if bench.quick else 15):
        for url, out in ((s.ours.url, ours), (s.theirs.url, theirs)):
            settle()
            started = time.perf_counter()
            response = s.http.post(url + "/sdapi/v1/txt2img", json=body)
            response.raise_for_status()
            assert response.json()["images"], f"{url} returned no image"
            out.append((time.perf_counter() - started) * 1000)
    row = "server: A1111 POST /sdapi/v1/txt2img wall time, warm (64x64 4 steps)"
    bench.add(rows.at_most(row, ours, theirs, 1.05, "ms", 1))
