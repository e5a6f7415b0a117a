"""``sdcpp generate``: txt2img, img2img, inpainting and ControlNet from the command line."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image

from .. import cache_presets
from .._pngmeta import save_png
from ..errors import InvalidArgument
from ..options import CacheOptions, SampleMethod, Scheduler
from .progress import progress_bar

logger = logging.getLogger(__name__)

# CLI flag -> StableDiffusion keyword for companion files
_FILES = {
    "diffusion_model": "diffusion_model",
    "vae": "vae",
    "taesd": "taesd",
    "clip_l": "clip_l",
    "clip_g": "clip_g",
    "t5xxl": "t5xxl",
    "llm": "llm",
    "control_net": "control_net",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    gen = sub.add_parser("generate", help="generate images (txt2img, img2img, inpaint)")
    gen.add_argument("-m", "--model", help="checkpoint file, or a model name with --models-dir")
    gen.add_argument("--models-dir", help="resolve -m NAME (and companions) in this directory")
    for flag in (
        "--diffusion-model",
        "--vae",
        "--taesd",
        "--clip_l",
        "--clip_g",
        "--t5xxl",
        "--llm",
        "--control-net",
    ):
        gen.add_argument(flag, dest=flag.lstrip("-").replace("-", "_"))
    gen.add_argument("--lora-model-dir", help="directory for <lora:name:weight> prompt tags")
    gen.add_argument("-p", "--prompt", required=True)
    gen.add_argument("-n", "--negative-prompt", default="")
    gen.add_argument("-o", "--output", default="output.png")
    gen.add_argument("-W", "--width", type=int)
    gen.add_argument("-H", "--height", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg-scale", type=float)
    gen.add_argument("--sampling-method", choices=[m.value for m in SampleMethod])
    gen.add_argument("--scheduler", choices=[s.value for s in Scheduler])
    gen.add_argument("-s", "--seed", type=int, default=42, help="-1 for a random seed")
    gen.add_argument("-b", "--batch-count", type=int, default=1)
    gen.add_argument("--eta", type=float)
    gen.add_argument("--clip-skip", type=int)
    gen.add_argument("-i", "--init-img")
    gen.add_argument("--mask")
    gen.add_argument("--control-image")
    gen.add_argument("--control-strength", type=float)
    gen.add_argument("--canny", action="store_true", help="apply canny to --control-image first")
    gen.add_argument("--strength", type=float)
    gen.add_argument(
        "--cache-mode",
        help="step cache: a preset (off, balanced, fast) or an engine mode (ucache, easycache, "
        "dbcache, taylorseer, cache-dit, spectrum); refused where the model cannot use it",
    )
    gen.add_argument(
        "--cache-option",
        help="sd-cli's named cache settings, e.g. 'threshold=0.25,start=0.1' (needs a mode)",
    )
    gen.add_argument("-t", "--threads", type=int)
    gen.set_defaults(func=run)


def _open(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def run(args: argparse.Namespace) -> int:
    from ..images import canny
    from ..stable_diffusion import StableDiffusion

    files = {kw: getattr(args, flag) for flag, kw in _FILES.items() if getattr(args, flag)}
    if args.models_dir:
        files = {**_from_models_dir(args.model, args.models_dir), **files}
    elif args.model:
        files["model"] = args.model
    if "model" not in files and "diffusion_model" not in files:
        raise InvalidArgument("give --model (or --diffusion-model)")
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
        "control_strength": args.control_strength,
    }
    if args.cache_mode or args.cache_option:
        options["cache"] = _cache_option(args.cache_mode, args.cache_option)
    if args.init_img:
        options["init_image"] = _open(args.init_img)
    if args.mask:
        options["mask_image"] = _open(args.mask)
    if args.control_image:
        control = _open(args.control_image)
        options["control_image"] = canny(control) if args.canny else control
    options = {k: v for k, v in options.items() if v is not None}
    started = time.perf_counter()
    # txt2img needs no VAE encoder: skipping it loads faster and uses less memory (as sd-cli)
    decode_only = "init_image" not in options
    with (
        progress_bar() as bar,
        StableDiffusion(
            files.pop("model", None),
            n_threads=args.threads,
            vae_decode_only=decode_only,
            lora_dir=args.lora_model_dir,
            progress=bar,
            **files,
        ) as sd,
    ):
        images = sd.generate(args.prompt, progress=bar, **options)
    out = Path(args.output)
    for i, image in enumerate(images):
        path = out if len(images) == 1 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        save_png(image, path)
        print(path)
    logger.info("done in %.2fs", time.perf_counter() - started)
    return 0


def _cache_option(mode: str | None, option: str | None) -> str | CacheOptions:
    """--cache-mode alone may name a preset; with --cache-option it must name an engine mode."""
    if not option:
        return str(mode)
    if not mode or mode in cache_presets.PRESET_NAMES:
        raise InvalidArgument("--cache-option needs --cache-mode with an engine mode (e.g. ucache)")
    return CacheOptions(mode=mode, settings=cache_presets.parse_cli_options(option))


def _from_models_dir(name: str | None, models_dir: str) -> dict[str, str]:
    from ..registry import ModelRegistry

    if not name:
        raise InvalidArgument("--models-dir needs -m NAME")
    registry = ModelRegistry(models_dir)
    entry = registry.get(name)
    return {"model": str(registry.resolve(entry.id))}
