"""Tests for the ncnn Real-ESRGAN -> safetensors converter (sdcpp.esrgan_ncnn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from sdcpp import _safetensors, esrgan_ncnn
from sdcpp.esrgan_ncnn import TAG_FP16, convert, parse_param, read_weights

EXPECTED_BLOCKS = {"RealESRGAN_x4plus": 23, "RealESRGAN_x4plus_anime_6B": 6}
TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")


def expected_shapes(num_block: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"conv_first": (64, 3, 3, 3)}
    for n in range(num_block):
        for k in (1, 2, 3):
            for j in range(1, 5):
                shapes[f"body.{n}.rdb{k}.conv{j}"] = (32, 64 + 32 * (j - 1), 3, 3)
            shapes[f"body.{n}.rdb{k}.conv5"] = (64, 64 + 4 * 32, 3, 3)
    shapes.update({name: (64, 64, 3, 3) for name in TAIL[:-1]})
    shapes["conv_last"] = (3, 64, 3, 3)
    return shapes


@pytest.fixture(scope="module")
def packaged() -> dict[str, tuple[Path, Path]]:
    models = esrgan_ncnn.find_packaged_models()
    assert set(models) == set(EXPECTED_BLOCKS), "install sdcpp[upscalers]"
    return models


@pytest.mark.parametrize("name", sorted(EXPECTED_BLOCKS))
def test_packaged_model_names_shapes_dtypes(
    packaged: dict[str, tuple[Path, Path]], name: str
) -> None:
    param, weights = packaged[name]
    tensors = read_weights(param, weights)
    shapes = expected_shapes(EXPECTED_BLOCKS[name])
    assert set(tensors) == {f"{s}.{kind}" for s in shapes for kind in ("weight", "bias")}
    blocks = {int(key.split(".")[1]) for key in tensors if key.startswith("body.")}
    assert blocks == set(range(EXPECTED_BLOCKS[name]))
    for stem, shape in shapes.items():
        weight, bias = tensors[f"{stem}.weight"], tensors[f"{stem}.bias"]
        assert weight.shape == shape and weight.dtype == np.float16, stem
        assert bias.shape == (shape[0],) and bias.dtype == np.float32, stem
        assert np.isfinite(weight).all() and np.isfinite(bias).all(), stem
        assert np.abs(weight).max() > 0, stem

    # Exact byte accounting: every conv is tag + fp16 weight (4-byte aligned) + fp32 bias.
    total = sum(
        4 + (t.nbytes + 3) // 4 * 4 if key.endswith(".weight") else t.nbytes
        for key, t in tensors.items()
    )
    assert total == weights.stat().st_size
    with weights.open("rb") as f:
        assert int.from_bytes(f.read(4), "little") == TAG_FP16


def test_packaged_param_parses(packaged: dict[str, tuple[Path, Path]]) -> None:
    layers = parse_param(packaged["RealESRGAN_x4plus_anime_6B"][0].read_text())
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(convs) == 1 + 15 * 6 + 5
    assert convs[1].params[9] == 2 and convs[1].params[10] == [pytest.approx(0.2)]
    assert convs[-1].outputs == ["output"] and convs[-1].params[0] == 3
    assert [layer.params[1] for layer in layers if layer.type == "Interp"] == [2.0, 2.0]


def test_convert_and_import_all(
    packaged: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    param, weights = packaged["RealESRGAN_x4plus_anime_6B"]
    out = convert(param, weights, tmp_path / "anime.safetensors")
    header, _ = _safetensors.read_header(out)
    assert header["__metadata__"]["num_block"] == "6"
    assert header["conv_first.weight"]["dtype"] == "F16"
    assert header["conv_first.bias"]["dtype"] == "F32"
    loaded = _safetensors.load(out)
    for key, value in read_weights(param, weights).items():
        np.testing.assert_array_equal(loaded[key], value)

    dest = tmp_path / "models"
    paths = esrgan_ncnn.import_all(dest)
    assert sorted(p.name for p in paths) == [f"{n}.safetensors" for n in sorted(EXPECTED_BLOCKS)]
    target = dest / "RealESRGAN_x4plus_anime_6B.safetensors"
    target.write_bytes(b"keep")
    esrgan_ncnn.import_all(dest)
    assert target.read_bytes() == b"keep"
    esrgan_ncnn.import_all(dest, overwrite=True)
    assert _safetensors.read_header(target)[0]["__metadata__"]["num_block"] == "6"

    monkeypatch.setattr(esrgan_ncnn, "PACKAGE", "no_such_package_for_sdcpp_tests")
    assert esrgan_ncnn.find_packaged_models() == {}
    with pytest.raises(RuntimeError, match="not installed"):
        esrgan_ncnn.import_all(dest)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    windows = sliding_window_view(np.pad(x, ((0, 0), (1, 1), (1, 1))), (3, 3), axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", windows, w.astype(np.float32)) + b[:, None, None]


def _rrdbnet(t: dict[str, np.ndarray], x: np.ndarray, num_block: int) -> np.ndarray:
    """Reference RRDBNet forward (x4) in numpy, x is [3, H, W] in 0..1."""

    def c(name: str, v: np.ndarray) -> np.ndarray:
        return _conv(v, t[f"{name}.weight"], t[f"{name}.bias"])

    def lrelu(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v, 0.2 * v)

    def up(v: np.ndarray) -> np.ndarray:
        return v.repeat(2, axis=1).repeat(2, axis=2)

    feat = body = c("conv_first", x)
    for n in range(num_block):
        block_in = body
        for k in (1, 2, 3):
            cat = [body]
            for j in range(1, 5):
                cat.append(lrelu(c(f"body.{n}.rdb{k}.conv{j}", np.concatenate(cat))))
            body = c(f"body.{n}.rdb{k}.conv5", np.concatenate(cat)) * 0.2 + body
        body = body * 0.2 + block_in
    feat = feat + c("conv_body", body)
    feat = lrelu(c("conv_up2", up(lrelu(c("conv_up1", up(feat))))))
    return c("conv_last", lrelu(c("conv_hr", feat)))


def test_anime_weights_upscale_sensibly(packaged: dict[str, tuple[Path, Path]]) -> None:
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    img = np.stack([xx, yy, np.full_like(xx, 0.5)])
    img[:, 4:12, 4:12] = np.array([0.9, 0.15, 0.15])[:, None, None]  # a red square
    out = _rrdbnet(read_weights(*packaged["RealESRGAN_x4plus_anime_6B"]), img, 6)
    assert out.shape == (3, 64, 64)
    down = out.reshape(3, 16, 4, 16, 4).mean(axis=(2, 4))  # box-downscale back to 16x16
    # Measured: 0.072 and 0.076. Swapping conv_up1/conv_up2, RGB order or two RDBs gives
    # 0.33/0.75, 0.33/0.83 and 0.11/0.25.
    assert np.abs(down - img).mean() < 0.1
    assert np.abs(out[:, 24:40, 24:40] - img[:, 8:9, 8:9]).max() < 0.15  # flat interior stays flat


# ---- synthetic files: error handling -------------------------------------------------------


def write_model(
    directory: Path,
    num_block: int = 1,
    nf: int = 64,
    gc: int = 32,
    fp16: bool = True,
    extra_lines: tuple[str, ...] = (),
) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Write a small but valid-shaped RRDBNet .param/.bin pair; return it and its tensors."""
    rng = np.random.default_rng(0)
    shapes: list[tuple[str, int, int, bool]] = [("conv_first", nf, 3, False)]
    for n in range(num_block):
        for k in (1, 2, 3):
            for j in range(1, 5):
                shapes.append((f"body.{n}.rdb{k}.conv{j}", gc, nf + (j - 1) * gc, True))
            shapes.append((f"body.{n}.rdb{k}.conv5", nf, nf + 4 * gc, False))
    shapes += [("conv_body", nf, nf, False), ("conv_up1", nf, nf, True)]
    shapes += [("conv_up2", nf, nf, True), ("conv_hr", nf, nf, True), ("conv_last", 3, nf, False)]

    lines = ["Input in 0 1 b0"]
    tensors: dict[str, np.ndarray] = {}
    blob = bin_data = b""
    for i, (name, out_ch, in_ch, leaky) in enumerate(shapes):
        if name in ("conv_up1", "conv_up2"):
            lines.append(f"Interp up_{name} 1 1 b{i} b{i}u 0=1 1=2.000000e+00 2=2.000000e+00")
            blob = "u"
        act = " 9=2 -23310=1,2.000000e-01" if leaky else ""
        size = out_ch * in_ch * 9
        lines.append(
            f"Convolution c{i} 1 1 b{i}{blob} b{i + 1} 0={out_ch} 1=3 4=1 5=1 6={size}{act}"
        )
        blob = ""
        weight = rng.standard_normal((out_ch, in_ch, 3, 3)).astype(np.float16 if fp16 else "<f4")
        bias = rng.standard_normal(out_ch).astype("<f4")
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = weight, bias
        tag = TAG_FP16 if fp16 else 0
        pad = b"\0" * (-weight.nbytes % 4)
        bin_data += tag.to_bytes(4, "little") + weight.tobytes() + pad + bias.tobytes()
    lines += extra_lines
    param = directory / "m.param"
    param.write_text("\n".join(["7767517", f"{len(lines)} {len(shapes) + 3}", *lines]) + "\n")
    weights = directory / "m.bin"
    weights.write_bytes(bin_data)
    return param, weights, tensors


@pytest.mark.parametrize("fp16", [True, False])
def test_synthetic_roundtrip(tmp_path: Path, fp16: bool) -> None:
    param, weights, expected = write_model(tmp_path, num_block=1, fp16=fp16)
    got = read_weights(param, weights)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(got[key], value)
    out = convert(param, weights, tmp_path / "m.safetensors")
    assert _safetensors.read_header(out)[0]["__metadata__"]["scale"] == "4"


def test_parse_param_values() -> None:
    layers = parse_param(
        "7767517\n2 2\nInput in 0 1 a\nEltwise add 2 1 a a b 0=1 -23301=2,2.0e-01,1\n"
    )
    assert [layer.type for layer in layers] == ["Input", "Eltwise"]
    assert layers[1].inputs == ["a", "a"] and layers[1].outputs == ["b"]
    assert layers[1].params == {0: 1, 1: [0.2, 1]}


@pytest.mark.parametrize(
    "text, match",
    [
        ("7767518\n0 0\n", "not an ncnn param"),
        ("7767517\n2 1\nInput in 0 1 a\n", "declares 2 layers"),
        ("7767517\n1 1\nInput in 0 2 a\n", "line 3"),
        ("7767517\n1 1\nInput in 0 1 a 0=1,2\n", "line 3"),
        ("7767517\n1 1\nInput in 0 1 a -23300=3,1,2\n", "line 3"),
    ],
)
def test_parse_param_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_param(text)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_synthetic_errors(tmp_path: Path) -> None:
    param, weights, _ = write_model(tmp_path)
    good = weights.read_bytes()

    weights.write_bytes(good + b"\0\0\0\0")
    with pytest.raises(ValueError, match="4 unexpected trailing bytes"):
        read_weights(param, weights)
    weights.write_bytes(good[:-4])
    with pytest.raises(ValueError, match="truncated at c"):
        read_weights(param, weights)
    weights.write_bytes(b"\x38\x4b\x0d\x00" + good[4:])  # int8 tag
    with pytest.raises(ValueError, match="unsupported ncnn weight tag 0x000D4B38"):
        read_weights(param, weights)
    weights.write_bytes(good)

    _edit(param, "6=1728", "6=1700")
    with pytest.raises(ValueError, match="weight_data_size 1700"):
        read_weights(param, weights)
    _edit(param, "6=1700", "6=1728 3=2")
    with pytest.raises(ValueError, match="3x3, stride 1"):
        read_weights(param, weights)
    _edit(param, "6=1728 3=2", "6=1728")
    read_weights(param, weights)

    _edit(param, "c2 1 1 b2 b3 0=32 1=3 4=1 5=1 6=27648", "c2 1 1 b2 b3 0=32 1=3 4=1 5=1 6=18432")
    with pytest.raises(ValueError, match=r"c2 \(as body.0.rdb1.conv2\)"):
        read_weights(param, weights)


def test_synthetic_structure_errors(tmp_path: Path) -> None:
    param, weights, _ = write_model(tmp_path, extra_lines=("PReLU p 1 1 b9 b9p 0=64",))
    with pytest.raises(ValueError, match="layer type PReLU"):
        read_weights(param, weights)
    param, weights, _ = write_model(tmp_path, nf=16, gc=8)
    with pytest.raises(ValueError, match="supports only 64/32"):
        read_weights(param, weights)
    param, weights, _ = write_model(tmp_path)
    lines = param.read_text().splitlines()
    drop = next(i for i, line in enumerate(lines) if "Convolution c5 " in line)
    lines[1] = f"{len(lines) - 3} 0"
    param.write_text("\n".join(lines[:drop] + lines[drop + 1 :]))
    with pytest.raises(ValueError, match="do not fit"):
        read_weights(param, weights)
