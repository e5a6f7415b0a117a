"""``sdcpp models list|info|hash|detect``: the models directory from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from .progress import progress_bar


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = sub.add_parser("models", help="list, inspect, hash and detect models")
    msub = models.add_subparsers(dest="models_command", required=True)

    ls = msub.add_parser("list", help="models in the models directory")
    ls.add_argument("--models-dir", default="models")
    ls.add_argument("--type", help="filter by type (checkpoint, lora, vae, ...)")
    ls.add_argument("--search")
    ls.add_argument("--sort-by", default="name", choices=["name", "size", "date", "type"])
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    for name, func, text in (
        ("info", run_info, "one model's entry and detection"),
        ("hash", run_hash, "SHA256 (cached) and A1111 short hash"),
    ):
        cmd = msub.add_parser(name, help=text)
        cmd.add_argument("model", help="id, relative path or name")
        cmd.add_argument("--models-dir", default="models")
        cmd.add_argument("--json", action="store_true")
        cmd.add_argument("--data-dir", help="where the hash cache lives")
        cmd.set_defaults(func=func)

    imp = msub.add_parser(
        "import-upscalers",
        help="convert the Real-ESRGAN weights of sdcpp[upscalers] to safetensors",
    )
    imp.add_argument("--models-dir", default="models")
    imp.add_argument("--overwrite", action="store_true")
    imp.set_defaults(func=run_import_upscalers)

    det = msub.add_parser("detect", help="detect the architecture of model files")
    det.add_argument("files", nargs="+")
    det.add_argument("--json", action="store_true")
    det.set_defaults(func=run_detect)


def _registry(args: argparse.Namespace) -> Any:
    from ..registry import ModelRegistry

    return ModelRegistry(args.models_dir, data_dir=getattr(args, "data_dir", None))


def run_list(args: argparse.Namespace) -> int:
    page = _registry(args).list(
        type=args.type, search=args.search, sort_by=args.sort_by, limit=None
    )
    if args.json:
        print(json.dumps([e.to_dict() for e in page.items], indent=2))
        return 0
    for e in page.items:
        print(
            f"{e.id}  {e.type.name.lower():<16} {e.architecture:<14} {e.size / 2**20:>9.1f} MiB"
            f"  {e.path}"
        )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..detect import detect

    registry = _registry(args)
    entry = registry.get(args.model)
    info = {**entry.to_dict(), "detection": _detection_dict(detect(registry.resolve(entry.id)))}
    print(
        json.dumps(info, indent=2)
        if args.json
        else "\n".join(f"{k:>14}: {v}" for k, v in info.items())
    )
    return 0


def run_hash(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entry = registry.get(args.model)
    with progress_bar() as bar:
        digest = registry.sha256(entry.id, progress=lambda done, total: bar(_Bytes(done, total)))
    result = {"id": entry.id, "path": entry.path, "sha256": digest, "short_hash": digest[:10]}
    print(json.dumps(result) if args.json else f"{digest}  {entry.path}")
    return 0


@dataclasses.dataclass
class _Bytes:
    """Adapts (done, total) byte counts to the progress bar's Progress shape."""

    step: int
    total: int
    phase: str = "hashing"


def run_import_upscalers(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..esrgan_ncnn import import_all

    target = Path(args.models_dir) / "esrgan"
    target.mkdir(parents=True, exist_ok=True)
    for path in import_all(target, overwrite=args.overwrite):
        print(path)
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from ..detect import detect

    results = [{"file": f, **_detection_dict(detect(f))} for f in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['file']}: {r['id']} ({r['name']}, {r['role']}, {r['format']})")
    return 0


def _detection_dict(d: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(d) and not isinstance(d, type):
        return dataclasses.asdict(d)
    return dict(vars(d))
