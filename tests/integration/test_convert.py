"""convert(): progress, cancellation from the progress callback, and a reproducible output."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _safetensors, cli
from sdcpp.cli import progress as cli_progress
from sdcpp.gguf import read_gguf


@pytest.fixture(scope="module")
def many_tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 tensors of uneven sizes, stored out of name order: worker threads finish them in a
    different order from run to run, which must not show in the output."""
    rng = np.random.default_rng(7)
    tensors = {}
    for i in rng.permutation(400):
        rows = int(rng.integers(1, 64)) * 4
        tensors[f"model.block{i:03d}.weight"] = rng.standard_normal((rows, 64)).astype(np.float32)
    path = tmp_path_factory.mktemp("convert-src") / "many.safetensors"
    _safetensors.save(path, tensors)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_progress_counts_tensors(many_tensors: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = sdcpp.convert(
        many_tensors, tmp_path / "p.gguf", type="q8_0", progress=lambda d, t: calls.append((d, t))
    )
    n = len(read_gguf(out).tensors)
    assert n == 400
    assert calls[-1] == (n, n)
    assert all(total == n for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] >= 0


def test_byte_identical_in_source_order(many_tensors: Path, tmp_path: Path) -> None:
    first = sdcpp.convert(many_tensors, tmp_path / "a.gguf", type="q8_0")
    second = sdcpp.convert(many_tensors, tmp_path / "b.gguf", type="q8_0")
    assert sha256(first) == sha256(second)
    names = [t.name for t in read_gguf(first).tensors]
    # the loader's source order; for safetensors that is the header's names, sorted
    assert names == sorted(_safetensors.read_header(many_tensors)[0])


def test_reordered_data_matches_source(many_tensors: Path, tmp_path: Path) -> None:
    out = sdcpp.convert(many_tensors, tmp_path / "f32.gguf", type="f32")
    info = read_gguf(out)
    source = _safetensors.load(many_tensors)
    with out.open("rb") as f:
        for t in info.tensors:
            f.seek(info.data_start + t.offset)
            data = np.frombuffer(f.read(t.nbytes or 0), dtype=np.float32)
            np.testing.assert_array_equal(data, source[t.name].ravel(), err_msg=t.name)


class Stop(Exception):
    pass


@pytest.mark.parametrize("at", ["first", "last"])
def test_exception_in_progress_cancels(many_tensors: Path, tmp_path: Path, at: str) -> None:
    raised: list[int] = []

    def progress(done: int, total: int) -> None:
        assert not raised, "called again after it raised"
        if at == "first" or done == total:  # "last": after every tensor, before the write
            raised.append(done)
            raise Stop

    with pytest.raises(Stop):
        sdcpp.convert(many_tensors, tmp_path / "c.gguf", type="q8_0", progress=progress)
    assert len(raised) == 1
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temp file
    # the cancel flag does not outlive the call
    out = sdcpp.convert(many_tensors, tmp_path / "d.gguf", type="q8_0")
    assert len(read_gguf(out).tensors) == 400


def test_safetensors_output_is_reproducible(many_tensors: Path, tmp_path: Path) -> None:
    first = sdcpp.convert(many_tensors, tmp_path / "a.safetensors", type="f16")
    second = sdcpp.convert(many_tensors, tmp_path / "b.safetensors", type="f16")
    assert sha256(first) == sha256(second)
    assert (
        _safetensors.read_header(first)[0].keys()
        == _safetensors.read_header(many_tensors)[0].keys()
    )


def test_cli_convert_shows_a_progress_bar(
    many_tensors: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a bar is drawn only on a terminal; force it on for the captured stderr
    forced = functools.partial(cli_progress.progress_bar, enabled=True)
    monkeypatch.setattr(cli_progress, "progress_bar", forced)
    out = tmp_path / "cli.gguf"
    code = cli.main(["convert", "-m", str(many_tensors), "-o", str(out), "--type", "q8_0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "converting" in captured.err and "400/400" in captured.err
    assert str(out) in captured.out and len(read_gguf(out).tensors) == 400
