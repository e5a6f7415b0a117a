"""The dialects' rows: wall time per warm 64x64 job through each compatibility API, ours
against upstream sd-server's own route of that API, interleaved round by round with the same
settings (model, size, steps, seed, sampler, cfg and threads). Goal for each: <= 1.05x.

- A1111 ``POST /sdapi/v1/txt2img``: the very same body to both.
- OpenAI ``POST /v1/images/generations`` (``images.generate``): sd-server's route reads only
  prompt, n, size and output_format, so it gets the sampling settings the way its docs say,
  as ``<sd_cpp_extra_args>{...}</sd_cpp_extra_args>`` inside the prompt (removed before
  generating); ours gets them as the top-level extras the SDK's ``extra_body`` sends.

Ours is an ordinary queued job (stored, leased, its output written then read back; the A1111
request's is then removed, as ``save_images`` is false); sd-server answers from memory.
``/sdapi/v1/progress`` under load is measured with the other control-plane GETs
(``server.control_plane``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import rows

if TYPE_CHECKING:
    from .run import Bench
    from .server import Servers

GOAL = 1.05  # ours <= 1.05x sd-server's wall time


def _interleaved(
    bench: Bench, s: Servers, path: str, bodies: tuple[Any, Any], images: Callable[[Any], Any]
) -> tuple[list[float], list[float]]:
    """Milliseconds per request, (ours, theirs): ``bodies`` posted to ``path`` of each server
    in turn; ``images`` reads the answer's images (it must have some)."""
    from .server import settle

    assert s.ours is not None and s.theirs is not None
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(6 if bench.quick else 15):
        for url, body, out in ((s.ours.url, bodies[0], ours), (s.theirs.url, bodies[1], theirs)):
            settle()
            started = time.perf_counter()
            response = s.http.post(url + path, json=body)
            response.raise_for_status()
            assert images(response.json()), f"{url}{path} returned no image"
            out.append((time.perf_counter() - started) * 1000)
    return ours, theirs


def txt2img_wall(bench: Bench, s: Servers) -> None:
    from .server import CFG, PROMPT, SAMPLER

    body = {"prompt": PROMPT, "width": 64, "height": 64, "steps": 4, "seed": 42}
    body |= {"cfg_scale": CFG, "sampler_name": SAMPLER}
    ours, theirs = _interleaved(bench, s, "/sdapi/v1/txt2img", (body, body), lambda a: a["images"])
    row = "server: A1111 POST /sdapi/v1/txt2img wall time, warm (64x64 4 steps)"
    bench.add(rows.at_most(row, ours, theirs, GOAL, "ms", 1))


def openai_generate_wall(bench: Bench, s: Servers) -> None:
    from .server import CFG, PROMPT, SAMPLER

    common = {"n": 1, "size": "64x64", "output_format": "png"}
    ours_body = {"prompt": PROMPT, **common, "steps": 4, "seed": 42}
    ours_body |= {"cfg_scale": CFG, "sampler": SAMPLER}
    extra = {"seed": 42, "sample_params": {"sample_steps": 4, "sample_method": SAMPLER,
             "guidance": {"txt_cfg": CFG}}}  # fmt: skip
    prompt = f"{PROMPT} <sd_cpp_extra_args>{json.dumps(extra)}</sd_cpp_extra_args>"
    theirs_body = {"prompt": prompt, **common}
    ours, theirs = _interleaved(
        bench,
        s,
        "/v1/images/generations",
        (ours_body, theirs_body),
        lambda a: [d["b64_json"] for d in a["data"] if d.get("b64_json")],
    )
    row = "server: OpenAI images.generate wall time, warm (64x64 4 steps)"
    bench.add(rows.at_most(row, ours, theirs, GOAL, "ms", 1))
