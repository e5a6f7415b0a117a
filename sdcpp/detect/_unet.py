"""The UNet family: SD 1.x, SD 2.x, SDXL (base, refiner, SSD-1B/Vega) and the tiny distillations.

Follows ``get_sd_version`` in stable-diffusion.cpp's ``src/model.cpp``: the width of the text
context (768 CLIP-L, 1024 OpenCLIP-H, 2048 CLIP-L + OpenCLIP-G) picks the generation, and the
presence of ``middle_block.1`` / ``output_blocks.7.1`` / ``output_blocks.3.1.transformer_blocks.1``
picks the distilled variants. Both the original LDM layout and diffusers' layout are read.
"""

from __future__ import annotations

from ._table import Ctx, Names, Verdict

# The engine's own list of text-encoder token embeddings that reveal the context width.
_TOKEN_EMBEDDINGS = (
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "cond_stage_model.model.token_embedding.weight",
    "text_model.embeddings.token_embedding.weight",
    "te.text_model.embeddings.token_embedding.weight",
    "conditioner.embedders.0.model.token_embedding.weight",
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
)
_SECOND_ENCODER = ("conditioner.embedders.1", "cond_stage_model.1", "te.1")


def _token_embedding(full: Names) -> str | None:
    return next((n for n in _TOKEN_EMBEDDINGS if full.has(n)), None)


def unet(c: Ctx) -> Verdict | None:
    d = c.d
    if d.starts("input_blocks."):
        conv_in, label = "input_blocks.0.0.weight", "label_emb.0.0.weight"
        mid = d.starts("middle_block.1.")
        out311 = d.starts("output_blocks.3.1.transformer_blocks.1.")
        out71 = d.starts("output_blocks.7.1.")
        attn1 = "output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight"
    elif d.starts("down_blocks.") and d.has("conv_in.weight"):
        conv_in, label = "conv_in.weight", "add_embedding.linear_1.weight"
        mid = d.starts("mid_block.resnets.1.")
        out311 = d.starts("up_blocks.1.attentions.0.transformer_blocks.1.")
        out71 = d.starts("up_blocks.2.attentions.1.")
        attn1 = "up_blocks.2.attentions.1.transformer_blocks.0.attn1.to_k.weight"
    else:
        return None

    to_k = d.find(r".*\.attn2\.to_k\.weight")  # cross-attention keys read the text context
    context = d.dim(to_k, -1)
    channels, in_channels, adm = d.dim(conv_in, 0), d.dim(conv_in, 1), d.dim(label, -1)
    token = _token_embedding(c.full)
    token_width = c.full.dim(token, -1)
    two_encoders = any(c.full.starts(p) for p in _SECOND_ENCODER)

    ev = [c.ev(conv_in)]
    if to_k is not None:
        ev.append(f"{c.ev(to_k)} (text context width {context})")
    if adm is not None:
        ev.append(f"{c.ev(label)} (pooled-text/size conditioning: SDXL-style)")
    if token is not None:
        ev.append(c.ev(token, full=True))
    if two_encoders:
        ev.append("a second text encoder (OpenCLIP-G beside CLIP-L)")
    suffix = {9: " Inpaint", 8: " InstructPix2Pix"}.get(in_channels or 0, "")
    if suffix:
        ev.append(f"{in_channels} UNet in-channels:{suffix}")
    if not mid:
        ev.append("no middle-block attention: a distilled UNet")

    # The refiner conditions on OpenCLIP-G alone (1280 context), has 384 base channels and a
    # 2560-wide ADM input (pooled text + sizes + aesthetic score).
    if context == 1280 or (channels == 384 and adm == 2560):
        return Verdict("sdxl_refiner", "Stable Diffusion XL Refiner", tuple(ev))
    if two_encoders or context == 2048 or adm == 2816:
        if mid:
            return Verdict("sdxl", f"Stable Diffusion XL{suffix}", tuple(ev))
        # engine: SSD-1B keeps two transformer blocks in output_blocks.3.1, Segmind Vega one
        if out311:
            return Verdict("ssd1b", "Segmind SSD-1B", tuple(ev))
        ev.append("one transformer block in output_blocks.3.1: Vega, reported as ssd1b")
        return Verdict("ssd1b", "Segmind Vega", tuple(ev))

    width = context or token_width
    if width is None:  # names only (a pickle of foreign objects): the text encoder's naming
        if c.full.starts("cond_stage_model.transformer."):
            width = 768
            ev.append("HF CLIP-L text encoder names (cond_stage_model.transformer.*), no shapes")
        elif c.full.starts("cond_stage_model.model."):
            width = 1024
            ev.append("OpenCLIP text encoder names (cond_stage_model.model.*), no shapes")
    if width == 768:
        if mid:
            return Verdict("sd1", f"Stable Diffusion 1.x{suffix}", tuple(ev))
        # engine: BK-SDM-Tiny keeps output_blocks.7.1 (attention), SDXS-512 has none there
        if out71:
            return Verdict("sd1_tiny", "SD 1.x Tiny UNet", tuple(ev))
        return Verdict("sdxs", "SDXS-512", tuple(ev))
    if width == 1024:
        ev.append("v-prediction (768-v) or epsilon (512-base) is not decidable from weights")
        if mid:
            return Verdict("sd2", f"Stable Diffusion 2.x{suffix}", tuple(ev))
        if d.dim(attn1, -1) == 1024:  # engine: SDXS-1024 (0.9) has 1024-wide attention there
            return Verdict("sdxs", "SDXS-1024 (0.9)", tuple(ev))
        return Verdict("sd2", "SD 2.x Tiny UNet", tuple(ev))
    ev.append(f"text context width {width} matches no known UNet family")
    return Verdict("unknown", "UNet (unknown family)", tuple(ev))
