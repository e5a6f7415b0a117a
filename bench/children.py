"""Measurement children: each runs in its own process so peak RSS and warm-up are its own.

    python -m bench.children sdcpp MODEL JSON_ARGS   -> prints one JSON line
    PEER_PYTHON -m bench.children peer MODEL JSON_ARGS

JSON_ARGS: {"width", "height", "steps", "seed", "threads", "repeats", "prompt", "eta"}.
Output: {"load_s", "times_s": [...], "peak_rss_mb", "rss_mb": [...], "png": path of first image}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_sdcpp(model: str, a: dict[str, Any]) -> dict[str, Any]:
    import sdcpp

    started = time.perf_counter()
    sd = sdcpp.StableDiffusion(model, n_threads=a["threads"], vae_decode_only=True)
    load_s = time.perf_counter() - started
    times, rss, first = [], [], None
    for _ in range(a["repeats"]):
        t0 = time.perf_counter()
        images = sd.generate_arrays(
            a["prompt"], width=a["width"], height=a["height"], steps=a["steps"], seed=a["seed"]
        )
        times.append(time.perf_counter() - t0)
        rss.append(rss_mb())
        first = first if first is not None else images[0]
    return {"load_s": load_s, "times_s": times, "rss_mb": rss, "first": first}


def run_peer(model: str, a: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from stable_diffusion_cpp import StableDiffusion  # type: ignore[import-not-found]

    started = time.perf_counter()
    # same settings as ours: txt2img only, so no VAE encoder (the peer's default loads it)
    sd = StableDiffusion(
        model_path=model, n_threads=a["threads"], vae_decode_only=True, verbose=False
    )
    load_s = time.perf_counter() - started
    times, rss, first = [], [], None
    for _ in range(a["repeats"]):
        t0 = time.perf_counter()
        # eta given explicitly: the peer's default 0.0 would change Euler A's output
        images = sd.generate_image(
            prompt=a["prompt"],
            width=a["width"],
            height=a["height"],
            sample_steps=a["steps"],
            seed=a["seed"],
            eta=a["eta"],
        )
        times.append(time.perf_counter() - t0)
        rss.append(rss_mb())
        first = first if first is not None else np.asarray(images[0].convert("RGB"))
    return {"load_s": load_s, "times_s": times, "rss_mb": rss, "first": first}


def main() -> int:
    kind, model, raw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = (run_sdcpp if kind == "sdcpp" else run_peer)(model, raw)
    first = result.pop("first")
    if raw.get("png") and first is not None:
        from PIL import Image

        Image.fromarray(first).save(raw["png"])
    result["peak_rss_mb"] = peak_rss_mb()
    print("BENCH " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
