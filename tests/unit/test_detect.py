"""Tests for sdcpp.detect: architecture detection from headers only.

Every canonical id is built as a ``{name: shape}`` table with the real tensor names and shapes of
the decisive tensors (read from the engine's model headers), then detected twice: from the table
and from a real file whose header declares those tensors (the data section is a sparse hole, so
a 24 GB FLUX header costs nothing on disk). GGUF and PyTorch-zip files are written by small
pure-Python writers below; the real synthetic SD 1.x and SDXS checkpoints are detected too.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
import types
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sdcpp import synthetic
from sdcpp.detect import CANONICAL_IDS, COMPONENT_IDS, Detection, detect, detect_from_tensors
from sdcpp.errors import ModelLoadError

Table = dict[str, tuple[int, ...]]
DM = "model.diffusion_model."


def lin(t: Table, name: str, n_out: int, n_in: int, bias: bool = True) -> None:
    t[f"{name}.weight"] = (n_out, n_in)
    if bias:
        t[f"{name}.bias"] = (n_out,)


# ---- table builders (names and shapes as in the real files) --------------------------------


def clip_text(prefix: str, width: int, layers: int) -> Table:
    t: Table = {f"{prefix}text_model.embeddings.token_embedding.weight": (49408, width)}
    for i in range(layers):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(t, f"{prefix}text_model.encoder.layers.{i}.self_attn.{proj}", width, width)
        lin(t, f"{prefix}text_model.encoder.layers.{i}.mlp.fc1", 4 * width, width)
    t[f"{prefix}text_model.final_layer_norm.weight"] = (width,)
    return t


def open_clip(prefix: str, width: int, layers: int) -> Table:
    t: Table = {f"{prefix}token_embedding.weight": (49408, width)}
    for i in range(layers):
        t[f"{prefix}transformer.resblocks.{i}.attn.in_proj_weight"] = (3 * width, width)
    return t


def kl_vae(prefix: str, z: int = 4) -> Table:
    t: Table = {
        f"{prefix}encoder.conv_in.weight": (128, 3, 3, 3),
        f"{prefix}encoder.conv_out.weight": (2 * z, 512, 3, 3),
        f"{prefix}decoder.conv_in.weight": (512, z, 3, 3),
        f"{prefix}decoder.mid.block_1.conv1.weight": (512, 512, 3, 3),
        f"{prefix}decoder.up.3.block.0.conv1.weight": (512, 512, 3, 3),
        f"{prefix}decoder.conv_out.weight": (3, 128, 3, 3),
    }
    if z == 4:
        t[f"{prefix}quant_conv.weight"] = (8, 8, 1, 1)
        t[f"{prefix}post_quant_conv.weight"] = (4, 4, 1, 1)
    return t


def unet(
    ch: int,
    context: int,
    *,
    level: int = 1,
    adm: int | None = None,
    mid: bool = True,
    out311: bool = True,
    out71: bool = True,
    in_ch: int = 4,
    p: str = DM,
) -> Table:
    c = ch * (2 if level == 4 else 1)  # SDXL's first attention is at input_blocks.4 (640)
    b = f"{p}input_blocks.{level}.1"
    t: Table = {
        f"{p}input_blocks.0.0.weight": (ch, in_ch, 3, 3),
        f"{p}time_embed.0.weight": (4 * ch, ch),
        # SD 1.x projects with 1x1 convs, SD 2.x and SDXL with Linear layers
        f"{b}.proj_in.weight": (c, c, 1, 1) if context == 768 else (c, c),
        f"{b}.transformer_blocks.0.attn2.to_k.weight": (c, context),
        f"{b}.transformer_blocks.0.attn2.to_v.weight": (c, context),
        f"{p}out.2.weight": (4, ch, 3, 3),
    }
    if adm:
        t[f"{p}label_emb.0.0.weight"] = (4 * ch, adm)
    if mid:
        t[f"{p}middle_block.1.norm.weight"] = (4 * ch,)
    if out311:
        t[f"{p}output_blocks.3.1.transformer_blocks.1.attn1.to_q.weight"] = (2 * ch, 2 * ch)
    if out71:
        t[f"{p}output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight"] = (2 * ch, 2 * ch)
    return t


def sdxl_like(mid: bool = True, out311: bool = True) -> Table:
    t = unet(320, 2048, level=4, adm=2816, mid=mid, out311=out311)
    t |= clip_text("conditioner.embedders.0.transformer.", 768, 12)
    t |= open_clip("conditioner.embedders.1.model.", 1280, 32)
    return t | kl_vae("first_stage_model.")


def mmdit(depth: int, attn2: int = 0, p: str = "") -> Table:
    h = 64 * depth
    t: Table = {f"{p}x_embedder.proj.weight": (h, 16, 2, 2), f"{p}pos_embed": (1, 36864, h)}
    lin(t, f"{p}context_embedder", h, 4096)
    for i in range(depth):
        for part in ("x_block", "context_block"):
            lin(t, f"{p}joint_blocks.{i}.{part}.attn.qkv", 3 * h, h)
            lin(t, f"{p}joint_blocks.{i}.{part}.adaLN_modulation.1", 6 * h, h)
        if i < attn2:
            lin(t, f"{p}joint_blocks.{i}.x_block.attn2.qkv", 3 * h, h)
    return t


def flux(
    double: int = 19,
    single: int = 38,
    h: int = 3072,
    in_ch: int = 64,
    guidance: bool = True,
    chroma: bool = False,
    p: str = "",
) -> Table:
    t: Table = {}
    if chroma:  # flux.hpp ChromaApproximator replaces time/vector/guidance embedders
        lin(t, f"{p}distilled_guidance_layer.in_proj", 5120, 64)
        lin(t, f"{p}distilled_guidance_layer.out_proj", h, 5120)
    else:
        lin(t, f"{p}time_in.in_layer", h, 256)
        lin(t, f"{p}vector_in.in_layer", h, 768)
        if guidance:
            lin(t, f"{p}guidance_in.in_layer", h, 256)
            lin(t, f"{p}guidance_in.out_layer", h, h)
    lin(t, f"{p}img_in", h, in_ch)
    lin(t, f"{p}txt_in", h, 4096)
    for i in range(double):
        for s in ("img", "txt"):
            b = f"{p}double_blocks.{i}.{s}"
            if not chroma:
                lin(t, f"{b}_mod.lin", 6 * h, h)
            lin(t, f"{b}_attn.qkv", 3 * h, h)
            t[f"{b}_attn.norm.query_norm.scale"] = t[f"{b}_attn.norm.key_norm.scale"] = (128,)
            lin(t, f"{b}_attn.proj", h, h)
            lin(t, f"{b}_mlp.0", 4 * h, h)
            lin(t, f"{b}_mlp.2", h, 4 * h)
    for i in range(single):
        b = f"{p}single_blocks.{i}"
        lin(t, f"{b}.linear1", 3 * h + 4 * h, h)
        lin(t, f"{b}.linear2", h, h + 4 * h)
        t[f"{b}.norm.query_norm.scale"] = t[f"{b}.norm.key_norm.scale"] = (128,)
        if not chroma:
            lin(t, f"{b}.modulation.lin", 3 * h, h)
    lin(t, f"{p}final_layer.linear", 64, h)  # 16 latent channels x 2x2 patch
    return t


def flux2(double: int = 8, single: int = 48, h: int = 6144, ctx: int = 15360) -> Table:
    t: Table = {"img_in.weight": (h, 128), "txt_in.weight": (h, ctx)}
    t["double_stream_modulation_img.lin.weight"] = (6 * h, h)
    t["double_stream_modulation_txt.lin.weight"] = (6 * h, h)
    t["single_stream_modulation.lin.weight"] = (3 * h, h)
    for i in range(double):
        t[f"double_blocks.{i}.img_attn.qkv.weight"] = (3 * h, h)
        t[f"double_blocks.{i}.img_mlp.0.weight"] = (6 * h, h)
    for i in range(single):
        t[f"single_blocks.{i}.linear1.weight"] = (9 * h, h)
    return t


def qwen_image(edit_flag: bool = False) -> Table:
    t: Table = {"txt_norm.weight": (3584,)}
    lin(t, "img_in", 3072, 64)
    lin(t, "txt_in", 3072, 3584)
    for i in range(60):
        lin(t, f"transformer_blocks.{i}.img_mod.1", 18432, 3072)
        lin(t, f"transformer_blocks.{i}.attn.to_q", 3072, 3072)
    if edit_flag:
        t["__index_timestep_zero__"] = (1,)
    return t


def z_image() -> Table:
    t: Table = {"cap_embedder.0.weight": (2560,), "cap_embedder.1.weight": (3840, 2560)}
    t["x_embedder.weight"] = (3840, 64)
    for group, n in (("layers", 30), ("noise_refiner", 2), ("context_refiner", 2)):
        for i in range(n):
            t[f"{group}.{i}.attention.qkv.weight"] = (11520, 3840)
    return t


def wan(layers: int, dim: int, in_dim: int, img_emb: bool = False, flf: bool = False) -> Table:
    t: Table = {"patch_embedding.weight": (dim, in_dim, 1, 2, 2), "patch_embedding.bias": (dim,)}
    lin(t, "text_embedding.0", dim, 4096)
    for i in range(layers):
        t[f"blocks.{i}.cross_attn.norm_k.weight"] = (dim,)
        lin(t, f"blocks.{i}.self_attn.q", dim, dim)
    if img_emb:
        lin(t, "img_emb.proj.1", 1280, 1280)
        lin(t, "img_emb.proj.3", dim, 1280)
    if flf:
        t["img_emb.emb_pos"] = (1, 514, 1280)
    return t


def ltxv() -> Table:
    t: Table = {f"{DM}patchify_proj.weight": (2048, 128), f"{DM}scale_shift_table": (2, 2048)}
    lin(t, f"{DM}adaln_single.emb.timestep_embedder.linear_1", 2048, 256)
    for i in range(28):
        lin(t, f"{DM}transformer_blocks.{i}.attn1.to_q", 2048, 2048)
    return t | {"vae.decoder.conv_in.conv.weight": (1024, 128, 3, 3, 3)}


def lora_sdxl() -> Table:
    t: Table = {}
    for name, n_in, n_out in (
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 2048, 640),
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280),
    ):
        t |= {f"{name}.lora_down.weight": (32, n_in), f"{name}.lora_up.weight": (n_out, 32)}
        t[f"{name}.alpha"] = ()
    return t


def esrgan(old_layout: bool = False) -> Table:
    if old_layout:
        t: Table = {"model.0.weight": (64, 3, 3, 3), "model.1.sub.23.weight": (64, 64, 3, 3)}
        for i in range(23):
            t[f"model.1.sub.{i}.RDB1.conv1.0.weight"] = (32, 64, 3, 3)
        return (
            t
            | {f"model.{k}.weight": (64, 64, 3, 3) for k in (3, 6, 8)}
            | {"model.10.weight": (3, 64, 3, 3)}
        )
    t = {"conv_first.weight": (64, 3, 3, 3), "conv_last.weight": (3, 64, 3, 3)}
    for i in range(23):
        for j in (1, 2, 3):
            t[f"body.{i}.rdb{j}.conv1.weight"] = (32, 64, 3, 3)
            t[f"body.{i}.rdb{j}.conv5.weight"] = (64, 192, 3, 3)
    return t | {f"{n}.weight": (64, 64, 3, 3) for n in ("conv_body", "conv_up1", "conv_up2")}


def llm_qwen25vl() -> Table:
    t: Table = {
        "model.embed_tokens.weight": (152064, 3584),
        "visual.blocks.0.attn.qkv.weight": (3840, 1280),
    }
    for i in range(28):
        lin(t, f"model.layers.{i}.self_attn.q_proj", 3584, 3584)
    return t


def photomaker() -> Table:
    t: Table = {"id_encoder.visual_projection_2.weight": (1280, 1024)}
    lin(t, "id_encoder.fuse_module.mlp1.fc1", 2048, 4096)
    lin(t, "id_encoder.vision_model.encoder.layers.0.self_attn.q_proj", 1024, 1024)
    lora = "lora_weights.unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"
    return t | {
        f"{lora}.to_k_lora.down.weight": (64, 320),
        f"{lora}.to_k_lora.up.weight": (320, 64),
    }


def t5(prefix: str = "") -> Table:
    t: Table = {f"{prefix}shared.weight": (32128, 4096)}
    for i in range(24):
        lin(t, f"{prefix}encoder.block.{i}.layer.0.SelfAttention.q", 4096, 4096, bias=False)
    return t | {f"{prefix}encoder.final_layer_norm.weight": (4096,)}


def sd2() -> Table:
    return (
        unet(320, 1024)
        | open_clip("cond_stage_model.model.", 1024, 24)
        | kl_vae("first_stage_model.")
    )


def refiner() -> Table:
    return unet(384, 1280, level=4, adm=2560) | open_clip(
        "conditioner.embedders.0.model.", 1280, 32
    )


def sd3() -> Table:
    t = mmdit(24, p=DM) | clip_text("text_encoders.clip_l.transformer.", 768, 12)
    return t | t5("text_encoders.t5xxl.transformer.") | kl_vae("first_stage_model.", 16)


def controlnet() -> Table:
    t = {"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}
    return (
        t
        | {"control_model.zero_convs.0.0.weight": (320, 320, 1, 1)}
        | unet(320, 768, p="control_model.")
    )


def chroma_radiance() -> Table:
    t = {
        "img_in_patch.weight": (3072, 3, 16, 16),
        "nerf_final_layer_conv.conv.weight": (3, 64, 3, 3),
    }
    return flux(chroma=True) | t


def layout(variant: str) -> Table:
    return {s.name: s.shape for s in synthetic.layout(variant)}


CASES: dict[str, Callable[[], Table]] = {
    "sd1": lambda: layout("sd1"),
    "sd2": sd2,
    "sdxl": sdxl_like,
    "sdxl_refiner": refiner,
    "ssd1b": lambda: sdxl_like(mid=False),
    "sd1_tiny": lambda: layout("sd1_tiny"),
    "sdxs": lambda: unet(320, 768, mid=False, out71=False, p=""),
    "sd3": sd3,
    "sd3.5_large": lambda: mmdit(38),
    "flux_dev": flux,
    "flux_schnell": lambda: flux(guidance=False),
    "flux_kontext": flux,  # told apart by its metadata only (METADATA below)
    "chroma": lambda: flux(chroma=True),
    "chroma_radiance": chroma_radiance,
    "flux2": flux2,
    "qwen_image": qwen_image,
    "qwen_image_edit": lambda: qwen_image(edit_flag=True),
    "z_image": z_image,
    "wan2.1_t2v": lambda: wan(30, 1536, 16),
    "wan2.1_i2v": lambda: wan(40, 5120, 36, img_emb=True),
    "wan2.1_flf2v": lambda: wan(40, 5120, 36, img_emb=True, flf=True),
    "wan2.2_t2v": lambda: wan(30, 3072, 48),
    "wan2.2_i2v": lambda: wan(40, 5120, 36),
    "ltxv": ltxv,
    "vae": lambda: kl_vae(""),
    "taesd": lambda: {
        "decoder.layers.0.weight": (64, 4, 3, 3),
        "encoder.layers.0.weight": (64, 3, 3, 3),
    },
    "lora": lora_sdxl,
    "esrgan": esrgan,
    "controlnet": controlnet,
    "embedding": lambda: {"clip_l": (4, 768), "clip_g": (4, 1280)},
    "clip_l": lambda: clip_text("", 768, 12),
    "clip_g": lambda: clip_text("", 1280, 32) | {"text_projection.weight": (1280, 1280)},
    "t5xxl": t5,
    "llm": llm_qwen25vl,
    "clip_vision": lambda: {"vision_model.embeddings.patch_embedding.weight": (1280, 3, 14, 14)},
    "photomaker": photomaker,
    "unknown": lambda: {"foo.weight": (3, 3), "bar.bias": (3,)},
}
CHECKPOINTS = {"sd1", "sd2", "sdxl", "sdxl_refiner", "ssd1b", "sd1_tiny", "sd3", "ltxv"}
METADATA = {"flux_kontext": {"modelspec.architecture": "Flux.1-Kontext-dev"}}


def expected_role(id_: str) -> str:
    if id_ in CHECKPOINTS:
        return "checkpoint"
    return "component" if id_ in COMPONENT_IDS or id_ == "unknown" else "diffusion_model"


# ---- file writers ---------------------------------------------------------------------------

SAFETENSORS_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8}


def write_safetensors(
    path: Path, table: Table, dtype: str = "BF16", metadata: dict[str, str] | None = None
) -> Path:
    """A complete safetensors file whose data section is a sparse hole (header-only cost)."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape in table.items():
        size = math.prod(shape) * SAFETENSORS_BYTES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def _gguf_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_str(value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if value and isinstance(value[0], str):  # array of strings
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(map(_gguf_str, value))
    return struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)


def write_gguf(path: Path, ne_table: Mapping[str, tuple[int, ...]], kv: dict[str, Any]) -> Path:
    """GGUF v3 with f16 tensors; ``ne_table`` gives ggml dims (ne0 first)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(ne_table), len(kv)))
    for key, value in kv.items():
        out += _gguf_str(key) + _gguf_value(value)
    offset = 0
    for name, ne in ne_table.items():
        out += _gguf_str(name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, 1, offset)
        offset += (math.prod(ne) * 2 + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    with path.open("wb") as f:
        f.write(out)
        f.truncate(len(out) + offset)
    return path


def torch_pickle(obj: dict[str, Any]) -> bytes:
    """Protocol-2 opcodes as torch.save writes them: tuples are tensors (HalfStorage), dicts of
    tensors are OrderedDicts, other dicts plain ones."""
    out = bytearray(b"\x80\x02")
    keys = iter(range(10**6))

    def text(s: str) -> None:
        out.extend(b"X" + struct.pack("<I", len(s.encode())) + s.encode())

    def integer(n: int) -> None:
        out.extend(b"J" + struct.pack("<i", n))

    def value(v: Any) -> None:
        if isinstance(v, dict):
            tensors_only = all(isinstance(x, tuple) for x in v.values())
            out.extend(b"ccollections\nOrderedDict\n)R(" if tensors_only else b"}(")
            for k, x in v.items():
                text(k)
                value(x)
            out.extend(b"u")
        elif isinstance(v, tuple):
            out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((")
            text("storage")
            out.extend(b"ctorch\nHalfStorage\n")
            text(str(next(keys)))
            text("cpu")
            integer(math.prod(v))
            out.extend(b"tQ")
            integer(0)
            out.extend(b"(")
            for d in v:
                integer(d)
            out.extend(b"t(")
            for i in range(len(v)):
                integer(math.prod(v[i + 1 :]))
            out.extend(b"t\x89ccollections\nOrderedDict\n)RtR")
        elif isinstance(v, int):
            integer(v)
        else:
            text(str(v))

    value(obj)
    return bytes(out + b".")


def write_torch_zip(path: Path, data_pkl: bytes, storages: int = 1) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        for i in range(storages):
            zf.writestr(f"archive/data/{i}", b"\0\0")
        zf.writestr("archive/version", "3\n")
    return path


# ---- every canonical id ----------------------------------------------------------------------


def check(d: Detection, expected_id: str, role: str) -> None:
    assert (d.id, d.role) == (expected_id, role), (d.name, d.evidence)
    assert d.id in CANONICAL_IDS
    assert d.name
    assert d.evidence and all(isinstance(e, str) and e for e in d.evidence)


def test_every_canonical_id_has_a_case() -> None:
    assert set(CASES) == set(CANONICAL_IDS)


@pytest.mark.parametrize("expected", list(CASES))
def test_detect_from_tensors(expected: str) -> None:
    table, metadata = CASES[expected](), METADATA.get(expected, {})
    d = detect_from_tensors(table, metadata=metadata)
    check(d, expected, expected_role(expected))
    assert d.tensor_count == len(table)
    assert d.parameters == sum(math.prod(s) for s in table.values())
    assert d.format == "safetensors"
    assert d.metadata == metadata


@pytest.mark.parametrize("expected", list(CASES))
def test_detect_safetensors_file(tmp_path: Path, expected: str) -> None:
    table, metadata = CASES[expected](), METADATA.get(expected, {})
    d = detect(write_safetensors(tmp_path / "m.safetensors", table, metadata=metadata))
    check(d, expected, expected_role(expected))
    assert d.dtypes == {"BF16": len(table)}
    assert d.metadata == metadata


# ---- real files, formats, sizes ---------------------------------------------------------------


@pytest.mark.slow
def test_real_synthetic_sd1_checkpoint() -> None:
    path = synthetic.cached_checkpoint("sd1")
    d = detect(path)
    check(d, "sd1", "checkpoint")
    assert d.name == "Stable Diffusion 1.x"
    assert d.tensor_count == len(synthetic.layout("sd1"))
    assert d.dtypes == {"F16": d.tensor_count - 1, "I64": 1}  # position_ids is int64
    assert d.parameters == sum(math.prod(s.shape) for s in synthetic.layout("sd1"))
    assert d.metadata["sdcpp.synthetic.variant"] == "sd1"
    assert f"tensor {DM}input_blocks.0.0.weight [320, 4, 3, 3]" in d.evidence


def test_real_synthetic_sdxs_checkpoint() -> None:
    d = detect(synthetic.cached_checkpoint("sdxs"))
    check(d, "sdxs", "checkpoint")
    assert any("distilled UNet" in e for e in d.evidence)


def test_20_gb_sparse_flux_dev(tmp_path: Path) -> None:
    table = flux()
    path = write_safetensors(tmp_path / "flux1-dev.safetensors", table)
    assert path.stat().st_size > 20 * 10**9  # ~23.8 GB declared, a hole on disk
    d = detect(path)
    check(d, "flux_dev", "diffusion_model")
    assert d.parameters is not None and d.parameters > 11 * 10**9
    assert "19 double blocks, 38 single blocks" in d.evidence
    assert any("Kontext" in e and "flux_dev" in e for e in d.evidence)


def test_gguf_sd_cpp_style_wan22_ti2v_with_merged_conv3d(tmp_path: Path) -> None:
    # sd.cpp's converter keeps full names and merges Conv3d's in/out axes into ne[3]
    table = {DM + k: v for k, v in wan(30, 3072, 48).items()}
    ne = {k: tuple(reversed(v)) for k, v in table.items()}
    ne[DM + "patch_embedding.weight"] = (2, 2, 1, 48 * 3072)
    d = detect(write_gguf(tmp_path / "wan.gguf", ne, {"general.name": "wan ti2v"}))
    check(d, "wan2.2_t2v", "diffusion_model")
    assert d.format == "gguf" and d.dtypes == {"f16": len(table)}
    assert d.metadata == {"general.name": "wan ti2v"}
    assert any("patch embedding in-channels 48" in e for e in d.evidence)


def test_gguf_city96_style_flux_shapes_are_reversed(tmp_path: Path) -> None:
    table = flux(guidance=False)
    ne = {k: tuple(reversed(v)) for k, v in table.items()}
    d = detect(write_gguf(tmp_path / "f.gguf", ne, {"general.architecture": "flux"}))
    check(d, "flux_schnell", "diffusion_model")
    assert "tensor img_in.weight [3072, 64]" in d.evidence  # PyTorch order again
    assert "gguf general.architecture = 'flux'" in d.evidence


def test_gguf_orig_shape_metadata_restores_5d_shapes(tmp_path: Path) -> None:
    table = wan(40, 5120, 36, img_emb=True)
    ne = {k: tuple(reversed(v)) for k, v in table.items()}
    ne["patch_embedding.weight"] = (2, 2, 36, 5120)  # reshaped to 4-D by the converter
    kv = {"comfy.gguf.orig_shape.patch_embedding.weight": [5120, 36, 1, 2, 2]}
    d = detect(write_gguf(tmp_path / "w.gguf", ne, kv))
    check(d, "wan2.1_i2v", "diffusion_model")
    assert f"tensor patch_embedding.weight {[5120, 36, 1, 2, 2]}" in d.evidence


def test_gguf_llama_cpp_text_encoders(tmp_path: Path) -> None:
    t5_ne = {"token_embd.weight": (4096, 32128), "enc.blk.0.attn_q.weight": (4096, 4096)}
    d = detect(write_gguf(tmp_path / "t5.gguf", t5_ne, {"general.architecture": "t5encoder"}))
    check(d, "t5xxl", "component")
    assert d.name == "T5-XXL encoder"
    vocab = [f"t{i}" for i in range(151936)]  # the tokenizer is skipped, not materialised
    qwen3: Table = {"token_embd.weight": (2560, 151936), "blk.0.attn_q.weight": (2560, 4096)}
    qwen3 |= {"blk.0.attn_q_norm.weight": (128,), "blk.35.attn_q.weight": (2560, 4096)}
    kv = {"general.architecture": "qwen3", "tokenizer.ggml.tokens": vocab, "general.alignment": 32}
    d = detect(write_gguf(tmp_path / "qwen3.gguf", qwen3, kv))
    check(d, "llm", "component")
    assert d.name == "Qwen3 text encoder"
    assert "36 layers, hidden size 2560" in d.evidence
    assert d.metadata == {"general.architecture": "qwen3", "general.alignment": "32"}


def test_ckpt_torch_zip_with_shapes(tmp_path: Path) -> None:
    table = sd2()
    data = torch_pickle({"state_dict": table, "global_step": 875000})
    d = detect(write_torch_zip(tmp_path / "v2.ckpt", data, storages=len(table)))
    check(d, "sd2", "checkpoint")
    assert d.format == "ckpt" and d.dtypes == {"F16": len(table)}
    assert d.parameters == sum(math.prod(s) for s in table.values())
    assert f"zip entry archive/data.pkl ({len(table)} storage entries)" in d.evidence
    assert "pickled dicts: state_dict" in d.evidence


def test_ckpt_textual_inversion_pt(tmp_path: Path) -> None:
    obj = {"string_to_token": {"*": (1,)}, "string_to_param": {"*": (8, 768)}, "step": 3000}
    d = detect(write_torch_zip(tmp_path / "emb.pt", torch_pickle(obj)))
    check(d, "embedding", "component")
    assert d.name == "Textual inversion SD 1.x"


def test_ckpt_names_found_without_unpickling_foreign_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("fake_torch_for_detect")
    built: list[str] = []

    class FakeTensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape = shape

        def __setstate__(self, state: dict[str, Any]) -> None:  # would run on pickle.load
            built.append("unpickled")

    FakeTensor.__module__, FakeTensor.__qualname__ = fake.__name__, "FakeTensor"
    fake.FakeTensor = FakeTensor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    names = [s.name for s in synthetic.layout("sd1")]
    data = pickle.dumps({"state_dict": {n: FakeTensor((1,)) for n in names}}, protocol=2)
    assert b"fake_torch_for_detect" in data
    # the module stays importable: if detect() unpickled, __setstate__ would record it
    d = detect(write_torch_zip(tmp_path / "sd1.ckpt", data))
    check(d, "sd1", "checkpoint")
    assert d.tensor_count == len(names) and d.parameters is None
    assert d.dtypes == {"unknown": len(names)}
    assert built == []


# ---- decisions between look-alikes --------------------------------------------------------------


def ids(table: Mapping[str, tuple[int, ...]], **metadata: str) -> tuple[str, str]:
    d = detect_from_tensors(table, metadata=metadata)
    return d.id, d.name


def evidence(table: Mapping[str, tuple[int, ...]], **metadata: str) -> str:
    return "\n".join(detect_from_tensors(table, metadata=metadata).evidence)


def test_adapters_are_not_taken_for_their_base_model() -> None:
    peft = "transformer.single_transformer_blocks.0.attn.to_q"
    flux_lora = {f"{peft}.lora_A.weight": (16, 3072), f"{peft}.lora_B.weight": (3072, 16)}
    assert ids(flux_lora) == ("lora", "LoRA")
    assert "targets look like FLUX" in evidence(flux_lora)
    assert "targets look like SDXL" in evidence(lora_sdxl())
    assert ids(photomaker())[0] == "photomaker"
    assert "base model: SD 1.x" in evidence(controlnet())
    assert ids(esrgan(old_layout=True)) == ("esrgan", "ESRGAN x4")
    assert "23 RRDB blocks, x4" in evidence(esrgan())


def test_flux_variants() -> None:
    assert ids(flux(in_ch=384)) == ("flux_dev", "FLUX.1 Fill [dev]")
    assert ids(flux(), **{"general.name": "flux1-kontext-dev"})[0] == "flux_kontext"
    assert "no guidance_in.* tensors" in evidence(flux(guidance=False))
    assert ids(flux2(5, 20, 3072, 7680)) == ("flux2", "FLUX.2 [klein]")
    assert ids(flux2()) == ("flux2", "FLUX.2 [dev]")
    diffusers = {
        "x_embedder.weight": (3072, 64),
        "transformer_blocks.0.attn.to_q.weight": (3072, 3072),
    }
    diffusers |= {"single_transformer_blocks.0.proj_out.weight": (3072, 15360)}
    assert ids(diffusers)[0] == "flux_schnell"
    diffusers["time_text_embed.guidance_embedder.linear_1.weight"] = (3072, 256)
    assert ids(diffusers)[0] == "flux_dev"


def test_sd3_family() -> None:
    assert ids(mmdit(24, attn2=13)) == ("sd3", "Stable Diffusion 3.5 Medium")
    assert ids(mmdit(24)) == ("sd3", "Stable Diffusion 3 Medium")
    diffusers = {"pos_embed.proj.weight": (2432, 16, 2, 2), "context_embedder.weight": (2432, 4096)}
    diffusers |= {f"transformer_blocks.{i}.attn.add_q_proj.weight": (2432, 2432) for i in range(38)}
    assert ids(diffusers)[0] == "sd3.5_large"


def test_unet_family_details() -> None:
    assert ids(unet(320, 768, in_ch=9)) == ("sd1", "Stable Diffusion 1.x Inpaint")
    assert ids(sdxl_like(mid=False, out311=False)) == ("ssd1b", "Segmind Vega")
    assert "not decidable from weights" in evidence(sd2())
    diffusers = {"conv_in.weight": (320, 4, 3, 3), "add_embedding.linear_1.weight": (1280, 2816)}
    diffusers |= {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048)}
    diffusers |= {"mid_block.resnets.1.conv1.weight": (1280, 1280, 3, 3)}
    d = detect_from_tensors({f"unet.{k}": v for k, v in diffusers.items()})
    assert (d.id, d.role) == ("sdxl", "diffusion_model")
    # names only (shapes unknown): the text encoder's naming still tells SD 2.x
    names_only = {k: None for k in sd2()}
    assert detect_from_tensors(names_only).id == "sd2"


def test_video_and_qwen_ties_follow_weights_then_metadata() -> None:
    assert ids(wan(40, 5120, 16)) == ("wan2.1_t2v", "Wan 2.1 T2V 14B")
    assert "reported as wan2.1_t2v" in evidence(wan(40, 5120, 16))
    assert ids(wan(40, 5120, 16), **{"modelspec.title": "Wan2.2 T2V A14B"})[0] == "wan2.2_t2v"
    assert (
        ids(qwen_image(), **{"modelspec.architecture": "qwen-image-edit"})[0] == "qwen_image_edit"
    )
    assert "reported as qwen_image" in evidence(qwen_image())


def test_components_named_by_shapes() -> None:
    assert ids(kl_vae("vae.", 16)) == ("vae", "SD3/FLUX.1 VAE")
    wan_vae = {
        "decoder.middle.0.residual.0.gamma": (384, 1, 1, 1),
        "conv2.weight": (48, 48, 1, 1, 1),
    }
    assert ids(wan_vae) == ("vae", "Wan 2.2 VAE")
    taehv = {"decoder.1.weight": (256, 16, 3, 3), "decoder.3.conv.0.weight": (256, 512, 3, 3)}
    assert ids(taehv) == ("taesd", "TAEHV (video)")
    assert ids(open_clip("", 1024, 24))[0:1] == ("unknown",)  # OpenCLIP-H: no canonical slot
    assert ids({"emb_params": (8, 1024)}) == ("embedding", "Textual inversion SD 2.x")
    lumina = {"cap_embedder.0.weight": (2304,), "x_embedder.weight": (2304, 64)}
    assert ids(lumina) == ("unknown", "NextDiT (Lumina-2 family)")
    anima = {"net.llm_adapter.blocks.0.cross_attn.q_proj.weight": (1024, 1024)}
    assert ids(anima) == ("unknown", "Anima")


# ---- refusals ------------------------------------------------------------------------------------


def broken_file(kind: str, d: Path) -> Path:
    if kind == "missing":
        return d / "missing.safetensors"
    if kind == "directory":
        return d
    if kind == "garbage":
        (d / "x.bin").write_bytes(b"\x00\x01 not a model at all")
        return d / "x.bin"
    if kind == "truncated safetensors":
        path = write_safetensors(d / "t.safetensors", clip_text("", 768, 1))
        os.truncate(path, path.stat().st_size - 10)
        return path
    if kind in {"truncated gguf", "gguf version"}:
        path = write_gguf(d / "g.gguf", {"a.weight": (4, 4)}, {"general.name": "x"})
        raw = path.read_bytes()
        path.write_bytes(raw[:30] if kind == "truncated gguf" else raw[:4] + b"\x07" + raw[5:])
        return path
    if kind == "zip without data.pkl":
        with zipfile.ZipFile(d / "n.ckpt", "w") as zf:
            zf.writestr("archive/version", "3")
        return d / "n.ckpt"
    return write_torch_zip(d / "p.ckpt", b"\x80\x02}q\x00(X")  # a pickle cut in the middle


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "not found"),
        ("directory", "not a file"),
        ("garbage", "not a safetensors, GGUF or checkpoint"),
        ("truncated safetensors", "truncated"),
        ("truncated gguf", "truncated GGUF header"),
        ("gguf version", "unsupported GGUF version 7"),
        ("zip without data.pkl", "without data.pkl"),
        ("broken pickle", "pickle"),
    ],
)
def test_unreadable_files_raise_model_load_error(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        detect(broken_file(kind, tmp_path))
