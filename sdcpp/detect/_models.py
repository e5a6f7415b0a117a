"""Rules for diffusion models (UNets and DiTs), one small function per family.

Markers follow ``get_sd_version`` in stable-diffusion.cpp's ``src/model.cpp`` and the model
headers that size each network from its tensors (flux.hpp, mmdit.hpp, wan.hpp, qwen_image.hpp,
z_image.hpp, unet.hpp), so a file is named the way the engine will treat it. Names are looked at
without the diffusion prefix (``ctx.d``), as the engine prepends ``model.diffusion_model.`` to
standalone diffusion files. Shapes are in PyTorch order ([out, in, ...]).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._table import Ctx, Verdict


def chroma_radiance(c: Ctx) -> Verdict | None:
    # Decisive: only Chroma-Radiance decodes pixels with a NeRF head; the engine tests this first.
    d = c.d
    hit = d.find(r"nerf_final_layer_conv\..*") or d.find(r"img_in_patch\..*")
    if hit is None:
        return None
    return Verdict("chroma_radiance", "Chroma Radiance", (c.ev(hit),))


def sd3(c: Ctx) -> Verdict | None:
    # Decisive: MMDiT's joint (context + x) blocks; diffusers names them transformer_blocks but
    # alone has a convolutional pos_embed.proj (FLUX's x_embedder is a Linear).
    d = c.d
    if d.starts("joint_blocks."):
        depth, marker = d.count("joint_blocks."), "joint_blocks."
        mmdit_x = d.find(r"joint_blocks\.\d+\.x_block\.attn2\..*") is not None
        embed = "context_embedder.weight"
    elif d.has("pos_embed.proj.weight") and d.starts("transformer_blocks.0.attn.add_q_proj."):
        depth, marker = d.count("transformer_blocks."), "transformer_blocks."
        mmdit_x = d.starts("transformer_blocks.0.attn2.")
        embed = "context_embedder.weight"
    else:
        return None
    # mmdit.hpp: hidden size = 64 * depth; 38 blocks is SD3.5 Large (and Large Turbo).
    evidence = [f"{depth} MMDiT blocks ({c.prefix}{marker}N), hidden size {64 * depth}"]
    evidence.append(c.ev(embed))
    if depth == 38:
        return Verdict("sd3.5_large", "Stable Diffusion 3.5 Large", tuple(evidence))
    if mmdit_x:
        evidence.append("x_block.attn2 present: MMDiT-X (SD3.5 Medium), reported in the sd3 family")
        return Verdict("sd3", "Stable Diffusion 3.5 Medium", tuple(evidence))
    return Verdict("sd3", "Stable Diffusion 3 Medium", tuple(evidence))


def qwen_image(c: Ctx) -> Verdict | None:
    # Decisive (engine): Qwen-Image's dual-stream blocks have img_mod.1 under transformer_blocks.
    d = c.d
    if not d.has("transformer_blocks.0.img_mod.1.weight"):
        return None
    evidence = [
        c.ev("transformer_blocks.0.img_mod.1.weight"),
        f"{d.count('transformer_blocks.')} transformer blocks",
        c.ev("txt_in.weight"),
    ]
    # Edit-2511 files carry the engine's zero_cond_t flag tensor; earlier Edit releases have
    # exactly the tensors of Qwen-Image and are told apart only by their metadata (if any).
    if d.has("__index_timestep_zero__"):
        evidence.append(c.ev("__index_timestep_zero__") + " (zero_cond_t: Qwen-Image-Edit-2511)")
        return Verdict("qwen_image_edit", "Qwen-Image-Edit", tuple(evidence))
    hint = c.mentions("edit")
    if hint:
        return Verdict("qwen_image_edit", "Qwen-Image-Edit", (*evidence, hint))
    evidence.append("Qwen-Image-Edit (before 2511) has the same tensors: reported as qwen_image")
    return Verdict("qwen_image", "Qwen-Image", tuple(evidence))


def flux2(c: Ctx) -> Verdict | None:
    # Decisive (engine): FLUX.2 shares one modulation across all double blocks.
    d = c.d
    if not d.has("double_stream_modulation_img.lin.weight"):
        return None
    double, single = d.count("double_blocks."), d.count("single_blocks.")
    evidence = (
        c.ev("double_stream_modulation_img.lin.weight"),
        f"{double} double blocks, {single} single blocks",
        c.ev("txt_in.weight"),
    )
    # engine: single_blocks.47 exists only in FLUX.2 [dev]; the smaller ones are [klein]
    name = "FLUX.2 [dev]" if d.starts("single_blocks.47.") else "FLUX.2 [klein]"
    return Verdict("flux2", name, evidence)


def z_image(c: Ctx) -> Verdict | None:
    # Decisive (engine): Z-Image's caption embedder (RMSNorm + Linear) is unique to it.
    d = c.d
    if not d.has("cap_embedder.0.weight"):
        return None
    evidence = (
        c.ev("cap_embedder.0.weight"),
        f"{d.count('layers.')} main layers, {d.count('noise_refiner.')} noise refiner layers",
    )
    # z_image.hpp builds one fixed size (Qwen3-4B captions, 2560 wide); Lumina-Image-2.0 shares
    # the NextDiT layout with Gemma-2 captions (2304 wide) and would not load as Z-Image.
    width = d.dim("cap_embedder.0.weight", 0)
    if width not in (None, 2560):
        return Verdict("unknown", "NextDiT (Lumina-2 family)", (*evidence, "not Z-Image's width"))
    return Verdict("z_image", "Z-Image", evidence)


def wan(c: Ctx) -> Verdict | None:
    # Decisive (engine): Wan's cross-attention has a key RMSNorm in block 0.
    d = c.d
    if not d.has("blocks.0.cross_attn.norm_k.weight"):
        return None
    layers = d.count("blocks.")
    # Patch embedding is Conv3d [dim, in_dim, 1, 2, 2] (Wan's patch is 1x2x2); GGUF files may
    # merge or reshape axes, so in_dim comes from element counts: numel / (dim * 4).
    dim = d.numel("patch_embedding.bias") or d.dim("patch_embedding.weight", 0)
    numel = d.numel("patch_embedding.weight")
    in_dim = numel // (dim * 4) if dim and numel else None
    evidence = [f"{layers} blocks, dim {dim}, patch embedding in-channels {in_dim}"]
    evidence.append(c.ev("patch_embedding.weight"))
    size = {30: "1.3B", 40: "14B"}.get(layers, "")
    vace = d.starts("vace_blocks.")
    if vace:
        evidence.append(f"{d.count('vace_blocks.')} VACE blocks (control video input)")
    if d.starts("img_emb."):
        # wan.hpp: img_emb is the CLIP-vision projection of the 2.1 image-conditioned models;
        # its learned emb_pos (2 x 257 image tokens) only exists for first+last-frame FLF2V.
        if d.has("img_emb.emb_pos"):
            evidence.append(c.ev("img_emb.emb_pos") + " (two reference frames)")
            return Verdict("wan2.1_flf2v", f"Wan 2.1 FLF2V {size}".strip(), tuple(evidence))
        evidence.append("img_emb.* present (CLIP-vision image conditioning)")
        return Verdict("wan2.1_i2v", f"Wan 2.1 I2V {size}".strip(), tuple(evidence))
    # engine: 48 latent in-channels (Wan 2.2 VAE) is TI2V-5B; 36 without img_emb is 2.2 I2V A14B
    if in_dim == 48 and dim == 3072:
        evidence.append("48 in-channels (Wan 2.2 VAE latents): TI2V 5B, text- and image-to-video")
        return Verdict("wan2.2_t2v", "Wan 2.2 TI2V 5B", tuple(evidence))
    if in_dim == 36:
        evidence.append("36 in-channels without img_emb: image latents concatenated (2.2 I2V)")
        return Verdict("wan2.2_i2v", "Wan 2.2 I2V A14B", tuple(evidence))
    label = "VACE" if vace else "T2V"
    hint = c.mentions("2.2", "2_2", "a14b")
    if hint and layers == 40:
        return Verdict("wan2.2_t2v", f"Wan 2.2 {label} A14B", (*evidence, hint))
    if layers == 40:
        evidence.append("Wan 2.2 T2V A14B experts have the same tensors: reported as wan2.1_t2v")
    return Verdict("wan2.1_t2v", f"Wan 2.1 {label} {size}".strip(), tuple(evidence))


def ltxv(c: Ctx) -> Verdict | None:
    # Decisive: LTX-Video's transformer patchifies latents with a Linear "patchify_proj" and
    # conditions through PixArt-style adaln_single; no other family uses these names.
    d = c.d
    if not (d.has("patchify_proj.weight") or d.starts("adaln_single.")):
        return None
    evidence = [c.ev("patchify_proj.weight"), f"{d.count('transformer_blocks.')} blocks"]
    name = "LTX-2" if d.starts("audio_") else "LTX-Video"
    evidence.append("the pinned engine has no LTX-Video diffusion model")
    return Verdict("ltxv", name, tuple(evidence))


def flux(c: Ctx) -> Verdict | None:
    # Decisive (engine): double_blocks (or diffusers' single_transformer_blocks) is FLUX.1's
    # dual-stream layout; FLUX.2 and Chroma-Radiance were claimed by earlier rules.
    d = c.d
    if d.starts("double_blocks."):
        img_in, double, single = "img_in.weight", "double_blocks.", "single_blocks."
        guidance = d.starts("guidance_in.")
    elif d.starts("single_transformer_blocks."):
        img_in, double, single = (
            "x_embedder.weight",
            "transformer_blocks.",
            "single_transformer_blocks.",
        )
        guidance = d.starts("time_text_embed.guidance_embedder.")
    else:
        return None
    evidence = [
        f"{d.count(double)} double blocks, {d.count(single)} single blocks",
        c.ev(img_in),
    ]
    if d.starts("distilled_guidance_layer."):
        # flux.hpp: Chroma replaces the per-block modulation with one approximator network
        evidence.append(c.ev(d.find(r"distilled_guidance_layer\..*")))
        return Verdict("chroma", "Chroma", tuple(evidence))
    # model.cpp: the image input width tells the conditioning variants of FLUX.1 [dev] apart
    variant = {384: "FLUX.1 Fill [dev]", 128: "FLUX.1 Canny/Depth [dev]", 196: "Flex.2"}
    in_channels = d.dim(img_in, 1)
    if not guidance:
        # schnell is timestep-distilled without a guidance embedder; dev is guidance-distilled
        evidence.append("no guidance_in.* tensors (FLUX.1 [dev] has a guidance embedder)")
        return Verdict("flux_schnell", "FLUX.1 [schnell]", tuple(evidence))
    evidence.append(c.ev(d.find(r"guidance_in\..*weight") or d.find(r"time_text_embed\.guid.*")))
    if in_channels in variant:
        evidence.append(f"{in_channels} image in-channels: {variant[in_channels]}")
        return Verdict("flux_dev", variant[in_channels], tuple(evidence))
    hint = c.mentions("kontext")
    if hint:
        return Verdict("flux_kontext", "FLUX.1 Kontext [dev]", (*evidence, hint))
    evidence.append("FLUX.1 Kontext [dev] has the same tensors: reported as flux_dev")
    return Verdict("flux_dev", "FLUX.1 [dev]", tuple(evidence))


def not_canonical(c: Ctx) -> Verdict | None:
    """Families the engine knows that have no canonical id here: named, but id "unknown"."""
    d = c.d
    markers = (
        ("llm_adapter.blocks.0.cross_attn.q_proj.weight", "Anima"),
        ("double_blocks.0.img_mlp.gate_proj.weight", "Ovis-Image"),
        ("layers.0.adaLN_sa_ln.weight", "ERNIE-Image"),
        ("input_blocks.8.0.time_mixer.mix_factor", "Stable Video Diffusion"),
    )
    for marker, name in markers:
        hit = d.find(f".*{re.escape(marker)}")  # Anima's names carry an extra "net." prefix
        if hit is not None:
            return Verdict("unknown", name, (c.ev(hit), f"{name} has no canonical id"))
    return None


FAMILIES: tuple[Callable[[Ctx], Verdict | None], ...] = (
    chroma_radiance,
    sd3,
    qwen_image,
    not_canonical,
    flux2,
    z_image,
    wan,
    ltxv,
    flux,
)
