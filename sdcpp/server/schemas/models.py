"""Request bodies of the model-management endpoints that go beyond a model id."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ...jobspec import ConvertSpec


class ConvertRequest(BaseModel):
    """Seed 002's ``POST /api/models/convert`` body. Every check beyond types (the
    quantization name, where the output goes) is ``server.conversion``'s, with 400s."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(..., min_length=1, max_length=1024, description="id, path or name")
    quantization_type: str = Field(
        ..., min_length=1, max_length=32, description="q8_0, q4_K (q4_k_s), f16, ..."
    )
    output_path: str | None = Field(
        None,
        max_length=1024,
        description="a .gguf file name (beside the input) or a path inside the models dir; "
        "default: {input}-{type}.gguf beside the input",
    )
    vae: str | None = Field(None, max_length=1024, description="a VAE to bake in (models dir)")
    tensor_type_rules: str | None = Field(
        None, max_length=4096, description="per-tensor types: 'regex=type,regex=type'"
    )
    overwrite: bool = Field(False, description="replace an existing output (admins only)")

    def to_spec(self) -> ConvertSpec:
        return ConvertSpec(
            model=self.model_name,
            quantization_type=self.quantization_type,
            output_path=self.output_path,
            vae=self.vae,
            tensor_type_rules=self.tensor_type_rules,
            overwrite=self.overwrite,
        )


class ValidateRequest(BaseModel):
    """``POST /api/models/validate``: the header checks, and on request a real load."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model_id: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description="id, path or name",
        validation_alias=AliasChoices("model_id", "model_name"),  # seed 002's spelling
    )
    load_test: bool = Field(
        False, description="also load it in the engine (it stays loaded, as an explicit load)"
    )
