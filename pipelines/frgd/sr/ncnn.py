"""Reader for ncnn ``.param`` / ``.bin`` model files (no ncnn runtime needed).

Only what the Real-ESRGAN ncnn releases use is supported for weights: ``Convolution`` (weights with the ncnn 4-byte
storage tag: fp16 ``0x01306B47``, raw fp32 ``0x00000000``; bias raw fp32), ``PReLU`` (raw fp32 slopes) and the
weight-free layers ``Input``, ``Split``, ``Concat``, ``Eltwise``, ``BinaryOp``, ``Interp``, ``PixelShuffle``.
A layer type that carries weights but is not listed raises :class:`NcnnFormatError` rather than desynchronising.

Format reference (ncnn wiki "param and model file structure"): the text ``.param`` starts with the magic ``7767517``,
then ``layer_count blob_count``, then one line per layer ``type name n_bottom n_top bottoms... tops... k=v ...``;
keys ``<= -23300`` hold arrays ``-(23300 + id)=n,v1,...,vn``. The ``.bin`` concatenates each layer's weights in layer
order; a "tagged" blob starts with a 4-byte tag, payloads are padded to 4 bytes.

Cancellation: no upscaler of the SR pane runs the ncnn runtime (an uninterruptible C call). The Real-ESRGAN ncnn
models are read here, converted to PyTorch once (:mod:`frgd.sr.ncnn_convert`) and run as torch modules, whose layers
check the job's :class:`frgd.jobs.CancelToken` (:mod:`frgd.sr.cancel`). The runtime only runs in
``frgd bench ncnn`` (parity on one small seeded input), which takes no cancel token.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FRGDError

logger = logging.getLogger(__name__)

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32 = 0x00000000

WEIGHT_FREE = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid", "Noop"}


class NcnnFormatError(FRGDError):
    """The ncnn files are malformed or use a feature this reader does not implement."""


ParamValue = int | float | list[int | float]


@dataclass
class NcnnLayer:
    """One layer of an ncnn graph; ``weights`` maps ``"weight"``/``"bias"``/``"slope"`` to float32 arrays."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, ParamValue]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    weight_dtype: str = ""

    def p(self, key: int, default: ParamValue = 0) -> ParamValue:
        """Parameter ``key`` (ncnn's numeric id) or ``default``."""
        return self.params.get(key, default)


@dataclass
class NcnnModel:
    """A parsed ncnn model: layers in file order, and the storage dtypes seen in the ``.bin``."""

    layers: list[NcnnLayer]
    blob_count: int

    def of_type(self, type_: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == type_]

    @property
    def weight_dtypes(self) -> set[str]:
        return {layer.weight_dtype for layer in self.layers if layer.weight_dtype}


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(text: str) -> tuple[list[NcnnLayer], int]:
    """Parse the text of a ``.param`` file into layers (weights empty) and the blob count."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != str(PARAM_MAGIC):
        raise NcnnFormatError(
            f"not an ncnn text .param file (first line {lines[:1]!r}, expected the magic {PARAM_MAGIC})"
        )
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (ValueError, IndexError) as err:
        raise NcnnFormatError(f"bad ncnn header line {lines[1:2]!r}") from err
    layers = [_parse_layer(ln) for ln in lines[2:]]
    if len(layers) != layer_count:
        raise NcnnFormatError(f"header says {layer_count} layers, found {len(layers)}")
    return layers, blob_count


def _parse_layer(ln: str) -> NcnnLayer:
    """One layer line ``type name n_bottom n_top bottoms... tops... k=v ...`` (raises :class:`NcnnFormatError`)."""
    tok = ln.split()
    try:
        if len(tok) < 4:
            raise ValueError("too few fields")
        type_, name, nb, nt = tok[0], tok[1], int(tok[2]), int(tok[3])
        bottoms = tok[4 : 4 + nb]
        tops = tok[4 + nb : 4 + nb + nt]
        if len(bottoms) != nb or len(tops) != nt:
            raise ValueError("fewer blob names than announced")
        params: dict[int, ParamValue] = {}
        for kv in tok[4 + nb + nt :]:
            key_s, _, val = kv.partition("=")
            key = int(key_s)
            if key <= -23300:
                vals = val.split(",")
                n = int(vals[0])
                params[-(key + 23300)] = [_number(v) for v in vals[1 : 1 + n]]
            else:
                params[key] = _number(val)
    except ValueError as err:
        raise NcnnFormatError(f"bad ncnn layer line {ln!r} ({err})") from None
    return NcnnLayer(type_, name, bottoms, tops, params)


class _BinReader:
    """Sequential reader of an ncnn ``.bin`` (``ModelBin`` semantics: tagged blobs and raw fp32 blobs)."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise NcnnFormatError(f".bin is truncated: need {n} bytes at offset {self.pos}, size {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _align4(self, nbytes: int) -> None:
        self.pos += (-nbytes) % 4

    def raw_fp32(self, count: int) -> np.ndarray:
        """An untagged float32 blob (ncnn ``load(w, 1)``: biases, PReLU slopes)."""
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tagged(self, count: int) -> tuple[np.ndarray, str]:
        """A blob with a 4-byte storage tag (ncnn ``load(w, 0)``) -> float32 values and the storage dtype name."""
        (tag,) = struct.unpack("<I", self._take(4))
        if tag == TAG_FP16:
            arr = np.frombuffer(self._take(2 * count), dtype="<f2").astype(np.float32)
            self._align4(2 * count)
            return arr, "float16"
        if tag == TAG_FP32:
            return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32), "float32"
        if tag == TAG_INT8:
            raise NcnnFormatError("int8-quantised ncnn weights are not supported")
        # any other non-zero tag is ncnn's 8-bit lookup-table quantisation: 256 float32 entries, then uint8 indices
        table = np.frombuffer(self._take(256 * 4), dtype="<f4")
        idx = np.frombuffer(self._take(count), dtype=np.uint8)
        self._align4(count)
        return table[idx].astype(np.float32), "lut8"

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def _read_layer_weights(layer: NcnnLayer, rd: _BinReader) -> None:
    if layer.type == "Convolution":
        num_output = int(layer.p(0))
        size = int(layer.p(6))
        if int(layer.p(8, 0)):
            raise NcnnFormatError(f"{layer.name}: int8 convolution is not supported")
        weight, dtype = rd.tagged(size)
        layer.weights["weight"] = weight
        layer.weight_dtype = dtype
        if int(layer.p(5, 0)):
            layer.weights["bias"] = rd.raw_fp32(num_output)
    elif layer.type == "PReLU":
        layer.weights["slope"] = rd.raw_fp32(int(layer.p(0, 0)))
    elif layer.type not in WEIGHT_FREE:
        raise NcnnFormatError(f"layer type {layer.type!r} ({layer.name}) is not supported by this reader")


def read_ncnn(param: str | Path, bin_: str | Path) -> NcnnModel:
    """Read ``param`` + ``bin_`` into an :class:`NcnnModel` with float32 weights.

    Raises :class:`NcnnFormatError` if the files do not match (unsupported layer, truncated or oversized ``.bin``).
    """
    try:
        text = Path(param).read_text(encoding="ascii")
    except UnicodeDecodeError as err:
        raise NcnnFormatError(f"{param} is not a text ncnn .param file ({err.reason})") from None
    layers, blob_count = parse_param(text)
    rd = _BinReader(Path(bin_).read_bytes())
    for layer in layers:
        _read_layer_weights(layer, rd)
    if rd.remaining:
        raise NcnnFormatError(f"{rd.remaining} unread bytes at the end of {bin_}: .param and .bin do not match")
    model = NcnnModel(layers, blob_count)
    logger.debug("read ncnn model %s: %d layers, weights %s", param, len(layers), model.weight_dtypes)
    return model


def write_ncnn(model: NcnnModel, param: str | Path, bin_: str | Path, fp16: bool = True) -> None:
    """Write ``model`` back as ncnn files (used by tests to make tiny models; fp16 or raw-fp32 tagged weights)."""
    lines = [str(PARAM_MAGIC), f"{len(model.layers)} {model.blob_count}"]
    chunks: list[bytes] = []
    for layer in model.layers:
        kv = []
        for k, v in layer.params.items():
            if isinstance(v, list):
                kv.append(f"{-23300 - k}={len(v)}," + ",".join(_fmt(x) for x in v))
            else:
                kv.append(f"{k}={_fmt(v)}")
        lines.append(
            " ".join([layer.type, layer.name, str(len(layer.bottoms)), str(len(layer.tops)), *layer.bottoms,
                      *layer.tops, *kv])
        )  # fmt: skip
        if layer.type == "Convolution":
            w = layer.weights["weight"]
            if fp16:
                payload = w.astype("<f2").tobytes()
                chunks += [struct.pack("<I", TAG_FP16), payload, b"\0" * ((-len(payload)) % 4)]
            else:
                chunks += [struct.pack("<I", TAG_FP32), w.astype("<f4").tobytes()]
            if "bias" in layer.weights:
                chunks.append(layer.weights["bias"].astype("<f4").tobytes())
        elif layer.type == "PReLU":
            chunks.append(layer.weights["slope"].astype("<f4").tobytes())
    Path(param).write_text("\n".join(lines) + "\n")
    Path(bin_).write_bytes(b"".join(chunks))


def _fmt(v: int | float) -> str:
    return f"{v:e}" if isinstance(v, float) else str(v)
