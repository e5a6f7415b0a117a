"""The convert job spec: a model to GGUF at a weight type (``POST /api/models/convert``).

The type name, the per-tensor rules and where the output goes are checked against the models
dir by ``sdcpp.server.conversion`` before queuing; this spec is what the request asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertSpec:
    model: str  # id, relative path or name in the models dir
    quantization_type: str  # q8_0, q4_K, f16, ... (conversion.parse_type)
    output_path: str | None = None  # None: {input}-{type}.gguf beside the input
    vae: str | None = None  # a VAE to bake in
    tensor_type_rules: str | None = None  # "regex=type,regex=type"
    overwrite: bool = False

    KIND = "convert"

    def validate(self) -> None:
        for name in ("model", "quantization_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"{name} must be a non-empty string")
