"""``sdcpp info``, ``sdcpp convert`` and ``sdcpp upscale``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from .. import __version__, engine_commit, engine_version, num_physical_cores, system_info
from .._native import HAS_CANCEL
from .._pngmeta import save_png
from ..options import WeightType


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    info = sub.add_parser("info", help="show build and engine information")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)

    conv = sub.add_parser("convert", help="convert/quantize a model (GGUF or safetensors)")
    conv.add_argument("-m", "--model", required=True, help="input model file")
    conv.add_argument("-o", "--output", required=True, help="output .gguf / .safetensors")
    conv.add_argument("--type", default="f16", help=", ".join(t.value for t in WeightType))
    conv.add_argument("--vae", help="bake this VAE into the output")
    conv.add_argument("--tensor-type-rules", help='per-tensor types, e.g. "^vae\\.=f16,attn=q8_0"')
    conv.set_defaults(func=run_convert)

    up = sub.add_parser("upscale", help="enlarge an image with an ESRGAN model")
    up.add_argument("--upscale-model", required=True)
    up.add_argument("-i", "--input", required=True)
    up.add_argument("-o", "--output", required=True)
    up.add_argument("--factor", type=int)
    up.add_argument("-t", "--threads", type=int)
    up.set_defaults(func=run_upscale)


def build_info() -> dict[str, object]:
    features = dict(
        item.split(" = ")
        for item in system_info().replace("System Info:", "").split("|")
        if " = " in item
    )
    return {
        "version": __version__,
        "engine_version": engine_version(),
        "engine_commit": engine_commit(),
        "physical_cores": num_physical_cores(),
        "cancel": HAS_CANCEL,
        "cpu_features": sorted(k.strip() for k, v in features.items() if v.strip() == "1"),
    }


def run_info(args: argparse.Namespace) -> int:
    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            print(f"{key:>16}: {shown}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..convert import convert
    from .progress import progress_bar

    started = time.perf_counter()
    with progress_bar() as bar:
        out = convert(
            args.model,
            args.output,
            type=args.type,
            vae=args.vae,
            tensor_type_rules=args.tensor_type_rules,
            progress=lambda done, total: bar(
                SimpleNamespace(phase="converting", step=done, total=total)
            ),
        )
    print(f"{out} ({time.perf_counter() - started:.1f}s)")
    return 0


def run_upscale(args: argparse.Namespace) -> int:
    from ..upscaler import Upscaler

    with (
        Image.open(args.input) as source,
        Upscaler(args.upscale_model, n_threads=args.threads) as up,
    ):
        result = up.upscale(source, args.factor)
    save_png(result, Path(args.output))
    print(args.output)
    return 0
