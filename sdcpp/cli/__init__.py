"""The ``sdcpp`` command: a thin shell over the library (flag names follow sd-cli's).

    sdcpp info [--json]                                build, engine version, CPU features
    sdcpp generate -m MODEL -p PROMPT -o OUT.png       txt2img / img2img / inpaint / ControlNet
    sdcpp convert -m IN -o OUT.gguf --type q8_0        quantize or convert a model
    sdcpp upscale --upscale-model M -i IN -o OUT       enlarge an image with an ESRGAN model
    sdcpp models list|info|hash|detect [--json]        the models directory
    sdcpp serve [--host --port --data-dir ...]         the REST server
    sdcpp worker --database URL [--models NAME...]     an engine worker on a PostgreSQL queue
    sdcpp users add|list|passwd|role|disable|delete    the server's accounts (auth)
    sdcpp keys create|list|revoke                      the server's API keys (auth)

User errors print one line and exit with status 1 (2 for bad command lines), no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import SdcppError
from . import accounts, generate, models, serve, tools, worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdcpp", description="stable-diffusion.cpp from Python")
    parser.add_argument("--version", action="version", version=f"sdcpp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the engine's log")
    sub = parser.add_subparsers(dest="command", required=True)
    tools.register(sub)
    generate.register(sub)
    models.register(sub)
    serve.register(sub)
    worker.register(sub)
    accounts.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (SdcppError, OSError, ValueError) as exc:
        print(f"sdcpp {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sdcpp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
