"""The ``sdcpp`` command: a thin shell over the library.

sdcpp info                                   build, engine version, CPU features
sdcpp generate -m MODEL -p PROMPT -o OUT.png txt2img / img2img / inpaint
sdcpp convert IN OUT.gguf --type q8_0        quantize or convert a model
sdcpp upscale -m ESRGAN IN OUT               enlarge an image with an ESRGAN model
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from . import __version__, convert, engine_commit, engine_version, num_physical_cores, system_info
from ._pngmeta import save_png
from .errors import SdcppError
from .options import SampleMethod, Scheduler, WeightType


def _info(_: argparse.Namespace) -> int:
    info = {
        "version": __version__,
        "engine_version": engine_version(),
        "engine_commit": engine_commit(),
        "physical_cores": num_physical_cores(),
        "system_info": " ".join(system_info().split()),
    }
    print(json.dumps(info, indent=2))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .stable_diffusion import StableDiffusion

    files = {
        k: getattr(args, k)
        for k in (
            "diffusion_model",
            "vae",
            "taesd",
            "clip_l",
            "clip_g",
            "t5xxl",
            "llm",
            "control_net",
        )
        if getattr(args, k)
    }
    options: dict[str, Any] = {
        "negative_prompt": args.negative_prompt,
        "width": args.width,
        "height": args.height,
        "steps": args.steps,
        "cfg_scale": args.cfg_scale,
        "sample_method": args.sampling_method,
        "scheduler": args.scheduler,
        "seed": args.seed,
        "batch_count": args.batch_count,
        "strength": args.strength,
        "eta": args.eta,
        "clip_skip": args.clip_skip,
    }
    if args.init_img:
        options["init_image"] = Image.open(args.init_img)
    if args.mask:
        options["mask_image"] = Image.open(args.mask)
    if args.control_image:
        options["control_image"] = Image.open(args.control_image)
    options = {k: v for k, v in options.items() if v is not None}
    started = time.perf_counter()
    # txt2img needs no VAE encoder: skipping it loads faster and uses less memory (as sd-cli)
    decode_only = "init_image" not in options
    with StableDiffusion(
        args.model, n_threads=args.threads, vae_decode_only=decode_only, **files
    ) as sd:
        images = sd.generate(args.prompt, **options)
    out = Path(args.output)
    for i, image in enumerate(images):
        path = out if len(images) == 1 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        save_png(image, path)
        print(path)
    logging.getLogger(__name__).info("done in %.2fs", time.perf_counter() - started)
    return 0


def _convert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = convert(
        args.input,
        args.output,
        type=args.type,
        vae=args.vae,
        tensor_type_rules=args.tensor_type_rules,
    )
    print(f"{out} ({time.perf_counter() - started:.1f}s)")
    return 0


def _upscale(args: argparse.Namespace) -> int:
    from .upscaler import Upscaler

    with Upscaler(args.model, n_threads=args.threads) as up:
        result = up.upscale(Image.open(args.input), args.factor)
    save_png(result, Path(args.output))
    print(args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdcpp", description="stable-diffusion.cpp from Python")
    parser.add_argument("--version", action="version", version=f"sdcpp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the engine's log")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("info", help="show build and engine information").set_defaults(func=_info)

    gen = sub.add_parser("generate", help="generate images (txt2img, img2img, inpaint)")
    gen.add_argument("-m", "--model", help="full checkpoint (.safetensors/.gguf/.ckpt)")
    for name in (
        "diffusion-model",
        "vae",
        "taesd",
        "clip_l",
        "clip_g",
        "t5xxl",
        "llm",
        "control-net",
    ):
        gen.add_argument(f"--{name}", dest=name.replace("-", "_"))
    gen.add_argument("-p", "--prompt", required=True)
    gen.add_argument("-n", "--negative-prompt", default="")
    gen.add_argument("-o", "--output", default="output.png")
    gen.add_argument("-W", "--width", type=int)
    gen.add_argument("-H", "--height", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg-scale", type=float)
    gen.add_argument("--sampling-method", choices=[m.value for m in SampleMethod])
    gen.add_argument("--scheduler", choices=[s.value for s in Scheduler])
    gen.add_argument("-s", "--seed", type=int, default=42)
    gen.add_argument("-b", "--batch-count", type=int, default=1)
    gen.add_argument("--eta", type=float)
    gen.add_argument("--clip-skip", type=int)
    gen.add_argument("-i", "--init-img")
    gen.add_argument("--mask")
    gen.add_argument("--control-image")
    gen.add_argument("--strength", type=float)
    gen.add_argument("-t", "--threads", type=int)
    gen.set_defaults(func=_generate)

    conv = sub.add_parser("convert", help="convert/quantize a model to GGUF")
    conv.add_argument("input")
    conv.add_argument("output")
    conv.add_argument(
        "--type",
        default="f16",
        type=str.lower,
        help="one of: " + ", ".join(t.value for t in WeightType),
    )
    conv.add_argument("--vae", help="bake this VAE into the output")
    conv.add_argument("--tensor-type-rules", help='per-tensor types, e.g. "^vae\\.=f16,attn=q8_0"')
    conv.set_defaults(func=_convert)

    up = sub.add_parser("upscale", help="enlarge an image with an ESRGAN model")
    up.add_argument("-m", "--model", required=True)
    up.add_argument("input")
    up.add_argument("output")
    up.add_argument("--factor", type=int)
    up.add_argument("-t", "--threads", type=int)
    up.set_defaults(func=_upscale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "generate" and not (args.model or args.diffusion_model):
        print("sdcpp generate: give --model or --diffusion-model", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (SdcppError, OSError) as exc:
        print(f"sdcpp {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
