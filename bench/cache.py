"""Step-cache rows: every cache mode and preset against ``off``, same model, seed and steps.

    python -m bench.cache [--variants sdxs,sd1] [--steps 20] [--size 128] [--rounds 3]

Each row is the median wall time of ``rounds`` warm generations with the mode, the speed-up over
``off`` measured in the same run (interleaved, so machine noise hits both alike), and the PSNR of
the output against the ``off`` image. The models are synthetic: their weights are random, so the
PSNR bounds how much caching changes the pixels, it is not a quality score.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import sdcpp
from sdcpp import cache_presets, synthetic
from sdcpp.options import CacheOptions

from . import rows

if TYPE_CHECKING:
    from .run import Bench


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def candidates(arch: str) -> list[tuple[str, CacheOptions | None]]:
    """``off``, each preset, and each mode the family allows with the engine's defaults."""
    rows: list[tuple[str, CacheOptions | None]] = [("off", None)]
    family = cache_presets.family_of(arch)
    for name, options in cache_presets.PRESETS[family].items():
        rows.append((f"preset {name} ({options.mode}, {options.settings})", options))
    for mode in cache_presets.MODES[family]:
        rows.append((f"mode {mode.value} (engine defaults)", CacheOptions(mode=mode)))
    return rows


def measure(variant: str, steps: int, size: int, rounds: int, threads: int) -> list[dict[str, Any]]:
    path = synthetic.cached_checkpoint(variant)
    rows = candidates(variant)  # the synthetic variants are named by their detection ids
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    images: dict[str, np.ndarray] = {}
    with sdcpp.StableDiffusion(model=path, n_threads=threads) as sd:
        opts: dict[str, Any] = {
            "width": size,
            "height": size,
            "steps": steps,
            "seed": 7,
            "cfg_scale": 1.0,
        }
        sd.generate_arrays("warm-up", **{**opts, "steps": 1})
        for _ in range(rounds):  # interleaved: each round runs every candidate once
            for label, cache in rows:
                started = time.perf_counter()
                out = sd.generate_arrays("a lighthouse", cache=cache, **opts)
                times[label].append(time.perf_counter() - started)
                images.setdefault(label, np.asarray(out[0]))
    base = statistics.median(times["off"])
    return [
        {
            "model": variant,
            "what": label,
            "seconds": statistics.median(times[label]),
            "times": times[label],
            "off_times": times["off"],
            "speedup": base / statistics.median(times[label]),
            "psnr": psnr(images["off"], images[label]),
        }
        for label, _ in rows
    ]


def cache_rows(bench: Bench, variant: str, steps: int, size: int, rounds: int) -> None:
    """The same candidates as rows of ``python -m bench`` (bench/RESULTS.md), in the bench's
    own process and threads; the "fast" preset on synthetic SD1 (#18's UNet model) has a goal."""
    for r in measure(variant, steps, size, rounds, bench.threads):
        if r["what"] != "off":
            model = f"{variant} {size}x{size} {steps} steps"
            bench.add(
                rows.cache_row(
                    model, r["what"], r["times"], r["off_times"], r["psnr"], variant == "sd1"
                )
            )


def table(results: list[dict[str, Any]], steps: int, size: int) -> str:
    lines = [
        f"| model ({size}x{size}, {steps} steps) | cache | median s | speed-up vs off | "
        "PSNR vs off (dB) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        p = "identical" if r["psnr"] == float("inf") else f"{r['psnr']:.1f}"
        lines.append(
            f"| {r['model']} | {r['what']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | {p} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cache", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--variants", default="sdxs,sd1")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=sdcpp.num_physical_cores())
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for variant in args.variants.split(","):
        results += measure(variant, args.steps, args.size, args.rounds, args.threads)
    text = table(results, args.steps, args.size)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
