from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdcpp import InvalidArgument
from sdcpp.loras import extract_lora_tags, resolve_lora


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    d = tmp_path / "loras"
    d.mkdir()
    (d / "ink.safetensors").write_bytes(b"x")
    (d / "old.ckpt").write_bytes(b"x")
    return d


def test_tags_are_removed_and_resolved(lora_dir: Path) -> None:
    prompt, loras = extract_lora_tags("a cat <lora:ink:0.7>, night <LORA:old>", lora_dir)
    assert prompt == "a cat , night"
    assert [(Path(x.path).name, x.multiplier) for x in loras] == [
        ("ink.safetensors", 0.7),
        ("old.ckpt", 1.0),
    ]


def test_no_tags_needs_no_directory() -> None:
    assert extract_lora_tags("plain prompt", None) == ("plain prompt", [])


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("<lora:missing:1>", "not found"),
        ("<lora:../escape:1>", "invalid LoRA name"),
        ("<lora:/etc/passwd:1>", "invalid LoRA name"),
        ("<lora:ink:heavy>", "bad LoRA weight"),
    ],
)
def test_bad_tags(lora_dir: Path, prompt: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        extract_lora_tags(prompt, lora_dir)


def test_tags_without_directory_are_an_error() -> None:
    with pytest.raises(InvalidArgument, match="no LoRA directory"):
        extract_lora_tags("<lora:ink:1>", None)


def test_symlink_leaving_the_directory_is_refused(lora_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"x")
    os.symlink(outside, lora_dir / "sneaky.safetensors")
    with pytest.raises(InvalidArgument, match="outside"):
        resolve_lora("sneaky", lora_dir)
