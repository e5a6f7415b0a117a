"""Rules for component files: adapters and upscalers (checked before the diffusion families,
because they reuse diffusion-model names) and autoencoders / encoders (checked after).

Markers come from the engine's loaders: lora.hpp and ``convert_tensor_name`` (LoRA suffixes),
control.hpp, esrgan.hpp, pmid.hpp, auto_encoder_kl.hpp, wan.hpp (WanVAE), tae.hpp, clip.hpp,
t5.hpp and llm.hpp (names, plus the llama.cpp GGUF names name_conversion.cpp maps).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._table import VAE_PREFIXES, Ctx, Names, Verdict

# name_conversion.cpp's LoRA suffix table (kohya, diffusers/PEFT, LyCORIS LoHa/LoKr).
_LORA_SUFFIXES = (
    ".lora_up.weight",
    ".lora_down.weight",
    ".lora.up.weight",
    ".lora.down.weight",
    "_lora.up.weight",
    ".lora_A.weight",
    ".lora_B.weight",
    ".lora_A.default.weight",
    ".lora_B.default.weight",
    ".hada_w1_a",
    ".lokr_w1",
    ".lokr_w1_a",
)
# Substrings of LoRA target names -> the base model family they adapt (evidence only).
_LORA_TARGETS = (
    ("img_mod", "Qwen-Image"),
    ("double_blocks", "FLUX"),
    ("single_transformer_blocks", "FLUX"),
    ("joint_blocks", "SD3"),
    ("cross_attn", "Wan"),
    ("noise_refiner", "Z-Image"),
    ("te2", "SDXL"),
    ("text_encoder_2", "SDXL"),
    ("input_blocks", "SD/SDXL UNet"),
    ("down_blocks", "SD/SDXL UNet"),
)
_EMBEDDING_KEYS = frozenset({"emb_params", "clip_l", "clip_g", "*", "string_to_param.*"})
_C = Callable[[Ctx], Verdict | None]


def _component(id_: str, name: str, *evidence: str) -> Verdict:
    return Verdict(id_, name, tuple(evidence), role="component")


def lora(c: Ctx) -> Verdict | None:
    # Decisive: low-rank factor pairs exist only in adapters (a LoRA also names base-model
    # blocks such as double_blocks, so this must run before the diffusion families).
    hit = next((s for s in _LORA_SUFFIXES if c.full.ends(s)), None)
    if hit is None:
        return None
    example = c.full.find(f".*{re.escape(hit)}")
    evidence = [c.ev(example, full=True)]
    target = next((base for key, base in _LORA_TARGETS if c.full.contains(key)), None)
    if target:
        evidence.append(f"targets look like {target}")
    return _component("lora", "LoRA", *evidence)


def controlnet(c: Ctx) -> Verdict | None:
    # Decisive: the hint encoder and zero convolutions only exist in ControlNets (which also
    # carry a copy of the UNet's input blocks).
    f = c.full
    hit = f.find(r".*(input_hint_block|zero_convs|controlnet_cond_embedding)\..*")
    hit = hit or f.find(r".*controlnet_(blocks|down_blocks|x_embedder)\..*")
    if hit is None:
        return None
    evidence = [c.ev(hit, full=True)]
    context = f.dim(f.find(r".*\.attn2\.to_k\.weight"), -1)
    base = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}.get(context or 0)
    if base is None and (f.contains("double_blocks") or f.contains("single_transformer_blocks")):
        base = "FLUX.1"
    if base:
        evidence.append(f"base model: {base}")
    return _component("controlnet", "ControlNet", *evidence)


def photomaker(c: Ctx) -> Verdict | None:
    # Decisive (pmid.hpp): the ID-embedding fuse MLP; v2 adds a Q-Former perceiver.
    f = c.full
    hit = f.find(r".*(fuse_module\.mlp1|visual_projection_2|qformer_perceiver)\..*")
    if hit is None:
        return None
    v2 = f.contains("qformer_perceiver.")
    return _component("photomaker", "PhotoMaker v2" if v2 else "PhotoMaker", c.ev(hit, full=True))


def esrgan(c: Ctx) -> Verdict | None:
    # Decisive (esrgan.hpp): RRDBNet residual-in-residual dense blocks, in the BasicSR layout
    # (conv_first, body.N.rdbK) or the old ESRGAN layout (model.0, model.1.sub.N.RDBK).
    f = c.full
    if f.has("conv_first.weight") and f.starts("body.0.rdb1."):
        blocks = f.count("body.")
        scale = 4 if f.has("conv_up2.weight") else 2 if f.has("conv_up1.weight") else 1
        first = "conv_first.weight"
    elif f.has("model.0.weight") and f.starts("model.1.sub.0.RDB1."):
        blocks = f.count("model.1.sub.") - 1  # the last sub-module is the trunk conv
        top = f.count("model.") - 1
        scale = 1 if top <= 4 else 2 if top <= 7 else 4  # the engine's rule
        first = "model.0.weight"
    else:
        return None
    return _component(
        "esrgan", f"ESRGAN x{scale}", c.ev(first, full=True), f"{blocks} RRDB blocks, x{scale}"
    )


def embedding(c: Ctx) -> Verdict | None:
    # Decisive: a textual-inversion file is a handful of token vectors under these keys
    # (A1111 "emb_params" / "string_to_param", SDXL's "clip_l" + "clip_g").
    names = set(c.full.shapes)
    if not names or not (names <= _EMBEDDING_KEYS or "string_to_param" in c.containers):
        return None
    widths = {n: c.full.dim(n, -1) for n in sorted(names)}
    base = {768: "SD 1.x", 1024: "SD 2.x"}.get(next(iter(widths.values())) or 0, "")
    if "clip_g" in names:
        base = "SDXL"
    shown = ", ".join(f"{n} {list(c.full.shape(n) or ())}" for n in widths)
    return _component("embedding", f"Textual inversion {base}".strip(), f"tensors {shown}")


def vae(c: Ctx) -> Verdict | None:
    f = c.full
    prefix = f.any_starts(VAE_PREFIXES) or ""
    v = f.strip(prefix) if prefix else f
    conv_in = "decoder.conv_in.weight"
    if v.has(conv_in) and (v.starts("decoder.up.") or v.starts("decoder.up_blocks.")):
        # KL autoencoder (auto_encoder_kl.hpp): the decoder's first conv reads the latent.
        z = v.dim(conv_in, 1)
        name = {4: "SD 1.x/2.x/XL", 16: "SD3/FLUX.1", 32: "FLUX.2"}.get(z or 0, f"{z}-channel")
        ltx = " (LTX-Video)" if v.starts("per_channel_statistics.") else ""
        evidence = (c.ev(prefix + conv_in, full=True), f"{z}-channel latent")
        return _component("vae", f"{name} VAE{ltx}", *evidence)
    if v.starts("decoder.middle.0.residual.") or v.starts("decoder.upsamples."):
        # WanVAE (wan.hpp): causal 3D convolutions; conv2 maps the latent to itself.
        z = v.dim("conv2.weight", 0) or v.dim("decoder.conv1.weight", 1)
        name = {16: "Wan 2.1 / Qwen-Image VAE", 48: "Wan 2.2 VAE"}.get(z or 0, "Wan-style VAE")
        hit = "conv2.weight" if v.has("conv2.weight") else "decoder.conv1.weight"
        return _component("vae", name, c.ev(prefix + hit, full=True), f"{z}-channel latent")
    return None


def taesd(c: Ctx) -> Verdict | None:
    f = c.full
    prefix = f.any_starts((*VAE_PREFIXES, "tae.")) or ""
    v = f.strip(prefix) if prefix else f
    if v.starts("decoder.layers.") and v.has("decoder.layers.0.weight"):
        # TAESD (tae.hpp): the first decoder conv reads the latent (4 SD, 16 SD3/FLUX.1, 32 FLUX.2)
        first = "decoder.layers.0.weight"
        kind = "TAESD"
    elif v.has("decoder.1.weight") and v.starts("decoder.3.conv."):
        first, kind = "decoder.1.weight", "TAEHV (video)"  # tae.hpp TinyVideoDecoder
    else:
        return None
    z = v.dim(first, 1)
    return _component("taesd", kind, c.ev(prefix + first, full=True), f"{z}-channel latent")


def clip_vision(c: Ctx) -> Verdict | None:
    f = c.full
    if f.contains("text_model.encoder.layers.") or f.contains("transformer.resblocks."):
        return None  # a text encoder (possibly a full CLIP): the text rules decide
    hit = f.find(r"(.*\.)?vision_model\.embeddings\.patch_embedding\.weight")
    hit = hit or f.find(r"(.*\.)?visual\.conv1\.weight")
    if hit is None:
        return None
    width = f.dim(hit, 0)
    kind = {1024: "ViT-L/14", 1280: "ViT-H/14", 1664: "ViT-bigG/14"}.get(width or 0, "")
    return _component("clip_vision", f"CLIP vision {kind}".strip(), c.ev(hit, full=True))


def clip_text(c: Ctx) -> Verdict | None:
    f = c.full
    token = f.find(r"(.*\.)?text_model\.embeddings\.token_embedding\.weight")
    layers = f.find(r"(.*\.)?text_model\.encoder\.layers\.0\..*")
    if token is None and f.contains("transformer.resblocks."):
        token = f.find(r"(.*\.)?token_embedding\.weight")  # OpenCLIP naming
    if token is None and layers is None:
        return None
    width = f.dim(token, -1) or f.dim(f.find(r".*final_layer_norm\.weight"), 0)
    evidence = (c.ev(token or layers, full=True), f"hidden size {width}")
    if width == 768:
        return _component("clip_l", "CLIP-L text encoder", *evidence)
    if width == 1280:
        return _component("clip_g", "OpenCLIP-G text encoder", *evidence)
    # OpenCLIP-H (SD 2.x's encoder) has no separate slot in the canonical ids
    name = "OpenCLIP-H text encoder" if width == 1024 else "CLIP text encoder"
    return Verdict("unknown", name, (*evidence, f"no canonical id for width {width}"), "component")


def t5(c: Ctx) -> Verdict | None:
    # Decisive: T5's relative-attention encoder blocks (HF "encoder.block.N.layer.M", llama.cpp
    # GGUF "enc.blk.N"), which no CLIP or decoder-only LLM has.
    f = c.full
    hit = f.find(r"(.*\.)?encoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight")
    hit = hit or f.find(r"(.*\.)?enc\.blk\.0\.attn_q\.weight")
    if hit is None:
        return None
    embed = f.find(r"(.*\.)?(shared|encoder\.embed_tokens|token_embd)\.weight")
    vocab, width = f.dim(embed, 0), f.dim(embed, -1) or f.dim(hit, -1)
    name = "UMT5-XXL" if vocab == 256384 else "T5-XXL" if width == 4096 else f"T5 (d {width})"
    return _component("t5xxl", f"{name} encoder", c.ev(hit, full=True), f"hidden size {width}")


def llm(c: Ctx) -> Verdict | None:
    # Decisive: a decoder-only transformer (HF "layers.N.self_attn.q_proj" with "embed_tokens",
    # or llama.cpp's "blk.N.attn_q" in GGUF) used as a text encoder (llm.hpp).
    f = c.full
    hit = f.find(r"(.*\.)?layers\.0\.self_attn\.q_proj\.weight") or f.find(
        r"blk\.0\.attn_q\.weight"
    )
    embed = f.find(r"(.*\.)?(embed_tokens|token_embd)\.weight")
    if hit is None or embed is None:
        return None
    vocab, hidden = f.dim(embed, 0), f.dim(embed, -1)
    layers = max(f.count(hit.split("layers.")[0] + "layers."), f.count("blk."))
    if f.contains("q_norm."):
        kind = "Qwen3"  # per-head q/k RMSNorm (llm.hpp QWEN3)
    elif f.contains("visual.") or c.metadata.get("general.architecture") == "qwen2vl":
        kind = "Qwen2.5-VL"
    elif vocab in (151936, 152064):
        kind = "Qwen2.5"
    elif vocab == 131072:
        kind = "Mistral"
    else:
        kind = str(c.metadata.get("general.architecture", "LLM"))
    evidence = (c.ev(embed, full=True), f"{layers} layers, hidden size {hidden}")
    return _component("llm", f"{kind} text encoder", *evidence)


# Run before the diffusion families: these files reuse diffusion-model tensor names.
# PhotoMaker goes first: its file carries LoRA weights for the UNet beside the ID encoder.
ADAPTERS: tuple[_C, ...] = (photomaker, lora, controlnet, esrgan, embedding)
# Run after them: a checkpoint contains a VAE and text encoders, so these only name files
# that have no diffusion model.
ENCODERS: tuple[_C, ...] = (vae, taesd, clip_vision, clip_text, t5, llm)


def names_summary(names: Names, limit: int = 3) -> str:
    shown = ", ".join(list(names.shapes)[:limit])
    return f"{len(names)} tensors matched no rule; first: {shown}" if shown else "no tensors"
