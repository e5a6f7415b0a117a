"""Synthetic, architecturally valid Stable Diffusion 1.x checkpoints, made with numpy alone.

Tests need a real model file, but downloading weights is not an option, so this module writes
single-file safetensors checkpoints whose *layout* is that of an original (LDM/CompVis) SD 1.x
checkpoint and whose *values* are a seeded, deterministic pseudo-random pattern. The layout was
derived by reading the stable-diffusion.cpp sources this package builds against:

* ``src/unet.hpp`` and ``src/common_block.hpp``: the UNet (``model.diffusion_model.*``: ResBlock,
  SpatialTransformer with 1x1-conv projections, down/up-sample blocks, and the block numbering
  used by the distilled "tiny" UNets, which keeps the indices of the removed blocks unused);
* ``src/auto_encoder_kl.hpp``: the KL autoencoder (``first_stage_model.*``, attention as 1x1
  convolutions, ``quant_conv``/``post_quant_conv``); ``src/tae.hpp``: the tiny autoencoder;
* ``src/clip.hpp``: the CLIP ViT-L/14 text model in Hugging Face naming under
  ``cond_stage_model.transformer.text_model.*``;
* ``get_sd_version`` in ``src/model.cpp``: a 768-wide token embedding means SD 1.x; without
  ``middle_block.1`` the UNet is a tiny one, reported as "SD 1.x Tiny UNet" when
  ``output_blocks.7.1`` exists (bk-sdm-tiny) and as "SDXS (512-DS)" otherwise; for SDXS,
  ``src/name_conversion.cpp`` renames ``first_stage_model.*`` to ``tae.*`` (a tiny autoencoder).

Variants: ``sd1`` (full size, ~2.1 GB in f16), ``sd1_tiny`` (bk-sdm-tiny shaped UNet, full VAE)
and ``sdxs`` (SDXS-512-DS shaped UNet with a tiny autoencoder: the smallest and fastest).
Every tensor's values depend only on the seed and its name, never on the order of writing.
Floating tensors are f16 (or f32); ``...embeddings.position_ids`` is int64, as in real files
(sd.cpp skips it). Command line: ``python -m sdcpp.synthetic {sd1,sd1_tiny,sdxs} OUT.safetensors``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdcpp import _safetensors

#: Bump when the bytes written for a given (variant, seed, dtype) change; it keys the cache.
FORMAT_VERSION = 1
VARIANTS = ("sd1", "sd1_tiny", "sdxs")
#: The fast variant tests should prefer; sd.cpp reports it as "SDXS (512-DS)", an SD 1.x family.
TINY_VARIANT = "sdxs"
#: What sd.cpp's log line "Version: ..." says for each variant.
ENGINE_VERSION_NAMES = {"sd1": "SD 1.x", "sd1_tiny": "SD 1.x Tiny UNet", "sdxs": "SDXS (512-DS)"}
DTYPES: dict[str, np.dtype[Any]] = {"f16": np.dtype("<f2"), "f32": np.dtype("<f4")}

_UNET = "model.diffusion_model."
_VAE = "first_stage_model."
_CLIP = "cond_stage_model.transformer.text_model."
_MODEL_CHANNELS = 320
_TIME_EMBED_DIM = 4 * _MODEL_CHANNELS
_CONTEXT_DIM = 768  # CLIP ViT-L/14 hidden size


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: its values are ``mean + U(-1, 1) * std * sqrt(3)`` (std 0: constant)."""

    name: str
    shape: tuple[int, ...]
    std: float = 0.0
    mean: float = 0.0
    integer: bool = False  # int64 0..n-1 along the last axis (CLIP position_ids)


class _Layout:
    """Collects tensor specs; weights get std gain/sqrt(fan_in), norms weight 1 and bias 0."""

    def __init__(self) -> None:
        self.specs: list[TensorSpec] = []

    def _add(self, name: str, shape: tuple[int, ...], std: float = 0.0, mean: float = 0.0) -> None:
        self.specs.append(TensorSpec(name, shape, std, mean))

    def linear(self, name: str, n_out: int, n_in: int, bias: bool = True) -> None:
        self._add(f"{name}.weight", (n_out, n_in), 1.0 / math.sqrt(n_in))
        if bias:
            self._add(f"{name}.bias", (n_out,), 0.02)

    def conv(
        self,
        name: str,
        n_out: int,
        n_in: int,
        k: int,
        *,
        bias: bool = True,
        gain: float = 1.0,
        bias_mean: float = 0.0,
    ) -> None:
        self._add(f"{name}.weight", (n_out, n_in, k, k), gain / math.sqrt(n_in * k * k))
        if bias:
            self._add(f"{name}.bias", (n_out,), 0.02, bias_mean)

    def norm(self, name: str, channels: int) -> None:  # GroupNorm and LayerNorm alike
        self._add(f"{name}.weight", (channels,), mean=1.0)
        self._add(f"{name}.bias", (channels,))


def _clip_text_model(t: _Layout) -> None:
    d, layers, vocab, positions = _CONTEXT_DIM, 12, 49408, 77
    t._add(f"{_CLIP}embeddings.token_embedding.weight", (vocab, d), 0.02)
    t._add(f"{_CLIP}embeddings.position_embedding.weight", (positions, d), 0.01)
    t.specs.append(TensorSpec(f"{_CLIP}embeddings.position_ids", (1, positions), integer=True))
    for i in range(layers):
        p = f"{_CLIP}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t.linear(f"{p}self_attn.{proj}", d, d)
        t.norm(f"{p}layer_norm1", d)
        t.norm(f"{p}layer_norm2", d)
        t.linear(f"{p}mlp.fc1", 4 * d, d)
        t.linear(f"{p}mlp.fc2", d, 4 * d)
    t.norm(f"{_CLIP}final_layer_norm", d)


def _res_block(t: _Layout, p: str, c_in: int, c_out: int) -> None:
    t.norm(f"{p}.in_layers.0", c_in)
    t.conv(f"{p}.in_layers.2", c_out, c_in, 3)
    t.linear(f"{p}.emb_layers.1", c_out, _TIME_EMBED_DIM)
    t.norm(f"{p}.out_layers.0", c_out)
    t.conv(f"{p}.out_layers.3", c_out, c_out, 3)
    if c_in != c_out:
        t.conv(f"{p}.skip_connection", c_out, c_in, 1)


def _spatial_transformer(t: _Layout, p: str, c: int) -> None:
    t.norm(f"{p}.norm", c)
    t.conv(f"{p}.proj_in", c, c, 1)
    b = f"{p}.transformer_blocks.0"
    for attn, kv_dim in (("attn1", c), ("attn2", _CONTEXT_DIM)):
        t.linear(f"{b}.{attn}.to_q", c, c, bias=False)
        t.linear(f"{b}.{attn}.to_k", c, kv_dim, bias=False)
        t.linear(f"{b}.{attn}.to_v", c, kv_dim, bias=False)
        t.linear(f"{b}.{attn}.to_out.0", c, c)
    t.linear(f"{b}.ff.net.0.proj", 8 * c, c)  # GEGLU: value and gate halves
    t.linear(f"{b}.ff.net.2", c, 4 * c)
    for n in ("norm1", "norm2", "norm3"):
        t.norm(f"{b}.{n}", c)
    t.conv(f"{p}.proj_out", c, c, 1)


def _unet(t: _Layout, mult: tuple[int, ...], n_res: int, attn_ds: tuple[int, ...]) -> None:
    """The openaimodel UNet as sd.cpp builds it; ``n_res == 1`` selects its tiny-UNet rules."""
    tiny = n_res == 1
    mc = _MODEL_CHANNELS
    t.linear(f"{_UNET}time_embed.0", _TIME_EMBED_DIM, mc)
    t.linear(f"{_UNET}time_embed.2", _TIME_EMBED_DIM, _TIME_EMBED_DIM)
    t.conv(f"{_UNET}input_blocks.0.0", mc, 4, 3)
    skips, ch, idx, ds = [mc], mc, 0, 1
    for level, m in enumerate(mult):
        for _ in range(n_res):
            idx += 1
            _res_block(t, f"{_UNET}input_blocks.{idx}.0", ch, m * mc)
            ch = m * mc
            if ds in attn_ds:
                _spatial_transformer(t, f"{_UNET}input_blocks.{idx}.1", ch)
            skips.append(ch)
            idx += tiny  # distilled UNets keep the numbering of the removed second block
        if level != len(mult) - 1:
            idx += 1
            t.conv(f"{_UNET}input_blocks.{idx}.0.op", ch, ch, 3)
            skips.append(ch)
            ds *= 2
    if not tiny:
        _res_block(t, f"{_UNET}middle_block.0", ch, ch)
        _spatial_transformer(t, f"{_UNET}middle_block.1", ch)
        _res_block(t, f"{_UNET}middle_block.2", ch, ch)
    idx = 0
    for level in reversed(range(len(mult))):
        for j in range(n_res + 1):
            _res_block(t, f"{_UNET}output_blocks.{idx}.0", ch + skips.pop(), mult[level] * mc)
            ch = mult[level] * mc
            sub = 1
            if ds in attn_ds:
                _spatial_transformer(t, f"{_UNET}output_blocks.{idx}.1", ch)
                sub = 2
            if level > 0 and j == n_res:
                if tiny:  # same quirk as sd.cpp's UnetModelBlock
                    idx += 1
                    sub = 1 if idx == 2 else sub
                t.conv(f"{_UNET}output_blocks.{idx}.{sub}.conv", ch, ch, 3)
                ds //= 2
            idx += 1
    t.norm(f"{_UNET}out.0", mc)
    t.conv(f"{_UNET}out.2", 4, mc, 3)


def _vae_res(t: _Layout, p: str, c_in: int, c_out: int) -> None:
    t.norm(f"{p}.norm1", c_in)
    t.conv(f"{p}.conv1", c_out, c_in, 3)
    t.norm(f"{p}.norm2", c_out)
    t.conv(f"{p}.conv2", c_out, c_out, 3)
    if c_in != c_out:
        t.conv(f"{p}.nin_shortcut", c_out, c_in, 1)


def _vae_mid(t: _Layout, p: str, c: int) -> None:
    _vae_res(t, f"{p}.mid.block_1", c, c)
    t.norm(f"{p}.mid.attn_1.norm", c)
    for n in ("q", "k", "v", "proj_out"):
        t.conv(f"{p}.mid.attn_1.{n}", c, c, 1)
    _vae_res(t, f"{p}.mid.block_2", c, c)


def _vae_kl(t: _Layout, ch: int = 128, mult: tuple[int, ...] = (1, 2, 4, 4), z: int = 4) -> None:
    enc, dec, n_res = f"{_VAE}encoder", f"{_VAE}decoder", 2
    t.conv(f"{enc}.conv_in", ch, 3, 3)
    c = ch
    for i, m in enumerate(mult):
        for j in range(n_res):
            _vae_res(t, f"{enc}.down.{i}.block.{j}", c, ch * m)
            c = ch * m
        if i != len(mult) - 1:
            t.conv(f"{enc}.down.{i}.downsample.conv", c, c, 3)
    _vae_mid(t, enc, c)
    t.norm(f"{enc}.norm_out", c)
    t.conv(f"{enc}.conv_out", 2 * z, c, 3)
    t.conv(f"{_VAE}quant_conv", 2 * z, 2 * z, 1)
    t.conv(f"{_VAE}post_quant_conv", z, z, 1)
    t.conv(f"{dec}.conv_in", c, z, 3)
    _vae_mid(t, dec, c)
    for i in reversed(range(len(mult))):
        for j in range(n_res + 1):
            _vae_res(t, f"{dec}.up.{i}.block.{j}", c, ch * mult[i])
            c = ch * mult[i]
        if i != 0:
            t.conv(f"{dec}.up.{i}.upsample.conv", c, c, 3)
    t.norm(f"{dec}.norm_out", c)
    t.conv(f"{dec}.conv_out", 3, c, 3)


def _vae_tiny(t: _Layout, c: int = 64, z: int = 4) -> None:
    """TAESD (``tae.hpp``): indices of parameter-free layers (ReLU, Upsample) stay unused."""

    def block(p: str) -> None:
        for k in (0, 2, 4):
            t.conv(f"{p}.conv.{k}", c, c, 3)

    enc = f"{_VAE}encoder.layers"
    t.conv(f"{enc}.0", c, 3, 3)
    block(f"{enc}.1")
    for stage in range(3):  # strided conv, then three blocks
        base = 2 + 4 * stage
        t.conv(f"{enc}.{base}", c, c, 3, bias=False)
        for k in range(1, 4):
            block(f"{enc}.{base + k}")
    t.conv(f"{enc}.14", z, c, 3)
    dec = f"{_VAE}decoder.layers"
    t.conv(f"{dec}.0", c, z, 3)
    for stage in range(3):  # three blocks, upsample, conv
        base = 2 + 5 * stage
        for k in range(3):
            block(f"{dec}.{base + k}")
        t.conv(f"{dec}.{base + 4}", c, c, 3, bias=False)
    block(f"{dec}.17")
    t.conv(f"{dec}.18", 3, c, 3, gain=0.5, bias_mean=0.5)  # output is an image in [0, 1]


def layout(variant: str) -> list[TensorSpec]:
    """Every tensor of ``variant``, in file order."""
    t = _Layout()
    if variant == "sd1":
        _unet(t, (1, 2, 4, 4), 2, (1, 2, 4))
        _vae_kl(t)
    elif variant == "sd1_tiny":
        _unet(t, (1, 2, 4), 1, (1, 2, 4))
        _vae_kl(t)
    elif variant == "sdxs":
        _unet(t, (1, 2, 4), 1, (2, 4))  # no attention at full latent resolution
        _vae_tiny(t)
    else:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    _clip_text_model(t)
    return t.specs


def _values(spec: TensorSpec, seed: int, dtype: np.dtype[Any]) -> np.ndarray:
    if spec.integer:
        return np.broadcast_to(np.arange(spec.shape[-1], dtype=np.int64), spec.shape).copy()
    if spec.std == 0.0:
        return np.full(spec.shape, spec.mean, dtype=dtype)
    n = math.prod(spec.shape)
    digest = hashlib.blake2b(spec.name.encode(), digest_size=16).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    # Raw bit-generator output (a stable stream, unlike Generator's distribution methods):
    # 23 random mantissa bits over exponent 0 give a float32 uniform in [1, 2).
    raw = np.random.PCG64(np.random.SeedSequence([seed, *words])).random_raw((n + 1) // 2)
    bits = raw.astype("<u8", copy=False).view("<u4")[:n] >> np.uint32(9)
    bits |= np.uint32(0x3F800000)
    x = bits.view(np.float32)
    half_width = np.float32(spec.std * math.sqrt(3.0))
    x -= np.float32(1.5)
    x *= 2 * half_width
    if spec.mean:
        x += np.float32(spec.mean)
    return x.reshape(spec.shape).astype(dtype, copy=False)


def write_checkpoint(
    path: str | os.PathLike[str], variant: str = "sd1", *, seed: int = 0, dtype: str = "f16"
) -> Path:
    """Write the ``variant`` checkpoint to ``path`` (atomically) and return the path."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    float_dtype = DTYPES[dtype]
    specs = layout(variant)
    # The README's first line writes into a data dir that does not exist yet.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    shapes = {s.name: (s.shape, np.dtype("<i8") if s.integer else float_dtype) for s in specs}
    tensors = {s.name: (lambda s=s: _values(s, seed, float_dtype)) for s in specs}
    metadata = {
        "format": "pt",
        "sdcpp.synthetic.variant": variant,
        "sdcpp.synthetic.format_version": str(FORMAT_VERSION),
        "sdcpp.synthetic.seed": str(seed),
        "sdcpp.synthetic.dtype": dtype,
    }
    target = Path(path)
    _safetensors.save(target, tensors, shapes=shapes, metadata=metadata)
    return target


def default_cache_dir() -> Path:
    env = os.environ.get("SDCPP_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sdcpp" / "synthetic"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise builders across processes where flock exists (the rename is atomic anyway)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_complete(path: Path, variant: str) -> bool:
    try:
        header, data_start = _safetensors.read_header(path)
    except (OSError, ValueError):
        return False
    meta = header.get("__metadata__", {})
    ends = [info["data_offsets"][1] for name, info in header.items() if name != "__metadata__"]
    return (
        meta.get("sdcpp.synthetic.variant") == variant
        and meta.get("sdcpp.synthetic.format_version") == str(FORMAT_VERSION)
        and path.stat().st_size == data_start + max(ends, default=0)
    )


def cached_checkpoint(variant: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the seed-0 f16 ``variant`` checkpoint in ``cache_dir``, built on first use.

    The default directory is ``$SDCPP_TEST_CACHE`` or ``~/.cache/sdcpp/synthetic``. Safe when
    several processes ask at once: one builds, the others wait and then reuse its file.
    """
    layout(variant)  # validate the name before touching the file system
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"{variant}-v{FORMAT_VERSION}.safetensors"
    if _is_complete(path, variant):
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory / f".{path.name}.lock"):
        if not _is_complete(path, variant):
            write_checkpoint(path, variant)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sdcpp.synthetic",
        description="Write a synthetic SD 1.x checkpoint (random weights, real layout).",
    )
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("out", type=Path, help="output .safetensors path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    args = parser.parse_args(argv)
    path = write_checkpoint(args.out, args.variant, seed=args.seed, dtype=args.dtype)
    print(f"{path} ({path.stat().st_size / 1e9:.2f} GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
