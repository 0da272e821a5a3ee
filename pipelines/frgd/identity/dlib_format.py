"""Reader for dlib's serialized DNN format (``dlib::serialize(net, out)``), written from the format itself.

Only what dlib's face-recognition metric network (``dlib_face_recognition_resnet_model_v1.dat``) uses is supported:
``loss_metric``, ``input_rgb_image_sized``, ``con``, ``affine``, ``relu``, ``add_prev``, ``avg_pool``, ``max_pool``,
``fc`` (``fc_no_bias``) and the tag/skip wrappers. dlib itself is not needed.

Format (dlib 19.x, little endian):

* integers: one header byte ``size | (0x80 if negative)`` followed by ``size`` magnitude bytes, least significant
  first (``0`` is ``01 00``);
* ``bool``: the ASCII byte ``'1'`` or ``'0'``;
* strings: an integer length then the bytes;
* ``float``/``double``: two integers, mantissa (int64) and exponent (int16), value ``mantissa * 2**exponent``;
* tensors: integer version (2), ``num_samples, k, nr, nc`` integers, then raw IEEE float32 little-endian values;
* alias tensors (views into a layer's ``params``): version (1), ``num_samples, k, nr, nc``; the offset is not stored,
  a layer's views are laid out one after another (filters then biases, gamma then beta, weights then biases).

A network ``loss<L_n<...<L_1<input>>>>`` is written outside-in: the loss wrapper writes its version and the loss
details, then every ``add_layer``/``add_tag_layer``/``add_skip_layer`` wrapper writes its version before recursing into
its subnetwork, so the file holds a run of wrapper versions (2 for a computational layer, 1 for a tag or skip), then
the input layer, then, innermost first, each computational layer's details followed by the wrapper's trailer
(three bools and three, normally empty, tensors: ``x_grad``, ``cached_output``, ``params_grad``; the wrapper of the
first layer, version 3, adds its sample expansion factor). Tags and skips
write nothing after their subnetwork; :func:`read_dlib_net` returns the computational layers in input -> output order
and the wrapper versions so a caller can check the tag/skip structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FRGDError

# dlib's float_details encodes infinities and NaN with these exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibFormatError(FRGDError):
    """The file is not a dlib network of a supported layout."""


@dataclass
class DlibLayer:
    """One computational layer: ``kind`` (``con``, ``affine``, ``relu``, ...), its scalars and float32 arrays."""

    kind: str
    tag: str
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network: loss, input layer and computational layers (input -> output order)."""

    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]
    wrapper_versions: list[int]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.d = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.d):
            raise DlibFormatError(f"unexpected end of dlib file at byte {self.pos}")

    def peek(self) -> int:
        self._need(1)
        return self.d[self.pos]

    def int(self) -> int:
        self._need(1)
        head = self.d[self.pos]
        size, neg = head & 0x0F, head & 0x80
        if size > 8 or head & 0x70:
            raise DlibFormatError(f"bad integer header 0x{head:02x} at byte {self.pos}")
        self._need(1 + size)
        v = int.from_bytes(self.d[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -v if neg else v

    def bool(self) -> bool:
        self._need(1)
        c = self.d[self.pos : self.pos + 1]
        if c not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {c!r} at byte {self.pos}")
        self.pos += 1
        return c == b"1"

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > 256:
            raise DlibFormatError(f"bad string length {n} at byte {self.pos}")
        self._need(n)
        s = self.d[self.pos : self.pos + n].decode("latin-1")
        self.pos += n
        return s

    def float(self) -> float:
        mant = self.int()
        exp = self.int()
        if exp == _EXP_INF:
            return float("inf")
        if exp == _EXP_NINF:
            return float("-inf")
        if exp == _EXP_NAN:
            return float("nan")
        return float(mant) * 2.0**exp

    def tensor(self) -> np.ndarray:
        ver = self.int()
        if ver != 2:
            raise DlibFormatError(f"unsupported tensor version {ver} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        n = int(np.prod(shape))
        self._need(4 * n)
        arr = np.frombuffer(self.d, dtype="<f4", count=n, offset=self.pos).reshape(shape).astype(np.float32)
        self.pos += 4 * n
        return arr

    def alias(self) -> tuple[int, int, int, int]:
        ver = self.int()
        if ver != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {ver} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _views(params: np.ndarray, *shapes: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Consecutive views of ``params`` with the given shapes (dlib lays a layer's aliases out back to back)."""
    flat = params.reshape(-1)
    out, off = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        if off + n > flat.size:
            raise DlibFormatError(f"parameter views {shapes} exceed params of size {flat.size}")
        out.append(flat[off : off + n].reshape(shape).copy())
        off += n
    return out


def _read_details(r: _Reader) -> DlibLayer:
    tag = r.string()
    if tag.startswith("con_"):
        params = r.tensor()
        a: dict[str, Any] = {"num_filters": r.int(), "nr": r.int(), "nc": r.int()}
        a.update(stride_y=r.int(), stride_x=r.int(), padding_y=r.int(), padding_x=r.int())
        filt, bias = r.alias(), r.alias()
        a.update(lr_mult=r.float(), wd_mult=r.float(), bias_lr_mult=r.float(), bias_wd_mult=r.float())
        if tag == "con_5":
            a["use_bias"] = r.bool()
        elif tag != "con_4":
            raise DlibFormatError(f"unsupported convolution serialization {tag!r}")
        weight, b = _views(params, filt, bias) if a.get("use_bias", True) else (*_views(params, filt), None)
        arrays = {"weight": weight}
        if b is not None:
            arrays["bias"] = b.reshape(-1)
        return DlibLayer("con", tag, a, arrays)
    if tag == "affine_":
        params = r.tensor()
        gamma, beta = r.alias(), r.alias()
        mode = r.int()
        g, b = _views(params, gamma, beta)
        return DlibLayer("affine", tag, {"mode": mode}, {"gamma": g.reshape(-1), "beta": b.reshape(-1)})
    if tag == "relu_":
        return DlibLayer("relu", tag)
    if tag == "add_prev_":
        return DlibLayer("add_prev", tag)
    if tag in ("avg_pool_2", "max_pool_2"):
        a = {k: r.int() for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        return DlibLayer(tag[:-2], tag, a)
    if tag == "fc_2":
        a = {"num_outputs": r.int(), "num_inputs": r.int()}
        params = r.tensor()
        w, b = r.alias(), r.alias()
        a["bias_mode"] = r.int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        a.update(lr_mult=r.float(), wd_mult=r.float(), bias_lr_mult=r.float(), bias_wd_mult=r.float())
        if a["bias_mode"] == 0:
            weight, bias_v = _views(params, w, b)
            arrays = {"weight": weight.reshape(a["num_inputs"], a["num_outputs"]), "bias": bias_v.reshape(-1)}
        else:
            arrays = {"weight": _views(params, w)[0].reshape(a["num_inputs"], a["num_outputs"])}
        return DlibLayer("fc", tag, a, arrays)
    raise DlibFormatError(f"unsupported dlib layer {tag!r}")


def _read_trailer(r: _Reader) -> None:
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib DNN file (``loss_metric`` over ``input_rgb_image_sized``) into a :class:`DlibNet`."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    if r.int() != 1:
        raise DlibFormatError(f"{path}: not a dlib loss-layer network")
    loss_tag = r.string()
    if loss_tag != "loss_metric_2":
        raise DlibFormatError(f"{path}: unsupported loss {loss_tag!r}")
    loss = DlibLayer("loss_metric", loss_tag, {"margin": r.float(), "distance_threshold": r.float()})
    versions: list[int] = []
    while True:  # wrapper versions (1 or 2) until the input layer's name length (21)
        save = r.pos
        if r.int() not in (1, 2, 3):
            r.pos = save
            break
        versions.append(data[save + 1])
    in_tag = r.string()
    if in_tag != "input_rgb_image_sized":
        raise DlibFormatError(f"{path}: unsupported input layer {in_tag!r}")
    avg = (r.float(), r.float(), r.float())
    inp = DlibLayer("input", in_tag, {"avg_rgb": avg, "nr": r.int(), "nc": r.int()})
    n_layers = sum(1 for v in versions if v >= 2)
    layers = []
    for i in range(n_layers):
        layers.append(_read_details(r))
        _read_trailer(r)
        if i == 0 and versions[-1] == 3:
            r.int()  # the first layer's wrapper (version 3) also stores its sample expansion factor
    if r.pos != len(data):
        raise DlibFormatError(f"{path}: {len(data) - r.pos} trailing bytes after the last layer")
    return DlibNet(loss=loss, input=inp, layers=layers, wrapper_versions=versions)


def _write_int(v: int) -> bytes:
    """dlib's integer encoding (used by tests to build small synthetic files)."""
    neg = v < 0
    v = abs(v)
    body = bytearray()
    while True:
        body.append(v & 0xFF)
        v >>= 8
        if v == 0:
            break
    return bytes([len(body) | (0x80 if neg else 0)]) + bytes(body)


def _write_float(x: float) -> bytes:
    mant, exp = np.frexp(np.float64(x))
    m = int(mant * 2**53)
    e = int(exp) - 53
    while m != 0 and m % 2 == 0:
        m //= 2
        e += 1
    return _write_int(m) + _write_int(e if m else 0)


def _write_tensor(arr: np.ndarray) -> bytes:
    shape = tuple(arr.shape) + (1,) * (4 - arr.ndim)
    out = _write_int(2) + b"".join(_write_int(s) for s in shape)
    return out + np.ascontiguousarray(arr, dtype="<f4").tobytes()


def _expect(layers: list[DlibLayer], i: int, kind: str) -> DlibLayer:
    if i >= len(layers) or layers[i].kind != kind:
        got = layers[i].kind if i < len(layers) else "end of network"
        raise DlibFormatError(f"layer {i}: expected {kind}, got {got} (not dlib's face-recognition ResNet layout)")
    return layers[i]


def metric_resnet_state_dict(net: DlibNet) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Map a parsed metric ResNet onto :class:`frgd.archs.dlib_resnet_arch.DlibFaceResNet`.

    Returns ``(config dict, state dict of float32 numpy arrays)``; raises :class:`DlibFormatError` when the layer
    sequence is not ``con affine relu max_pool (con affine relu con affine [avg_pool] add_prev relu)* avg_pool fc``.
    """
    L = net.layers
    sd: dict[str, np.ndarray] = {}
    stem = _expect(L, 0, "con")
    sd["stem_conv.weight"], sd["stem_conv.bias"] = stem.arrays["weight"], stem.arrays["bias"]
    aff = _expect(L, 1, "affine")
    sd["stem_aff.weight"], sd["stem_aff.bias"] = aff.arrays["gamma"], aff.arrays["beta"]
    _expect(L, 2, "relu")
    _expect(L, 3, "max_pool")
    i, b = 4, 0
    stages: list[list] = []
    ch = stem.attrs["num_filters"]
    while i < len(L) and L[i].kind == "con":
        c1, a1 = _expect(L, i, "con"), _expect(L, i + 1, "affine")
        _expect(L, i + 2, "relu")
        c2, a2 = _expect(L, i + 3, "con"), _expect(L, i + 4, "affine")
        down = L[i + 5].kind == "avg_pool"
        j = i + 5 + int(down)
        _expect(L, j, "add_prev")
        _expect(L, j + 1, "relu")
        if down != (c1.attrs["stride_y"] == 2):
            raise DlibFormatError(f"layer {i}: downsampling block without matching stride")
        p = f"blocks.{b}."
        sd[p + "conv1.weight"], sd[p + "conv1.bias"] = c1.arrays["weight"], c1.arrays["bias"]
        sd[p + "aff1.weight"], sd[p + "aff1.bias"] = a1.arrays["gamma"], a1.arrays["beta"]
        sd[p + "conv2.weight"], sd[p + "conv2.bias"] = c2.arrays["weight"], c2.arrays["bias"]
        sd[p + "aff2.weight"], sd[p + "aff2.bias"] = a2.arrays["gamma"], a2.arrays["beta"]
        out = c1.attrs["num_filters"]
        if down or not stages or stages[-1][0] != out:
            stages.append([out, 1, down])
        else:
            stages[-1][1] += 1
        ch = out
        i, b = j + 2, b + 1
    pool = _expect(L, i, "avg_pool")
    if pool.attrs["nr"] != 0:
        raise DlibFormatError("expected avg_pool_everything before the fc layer")
    fc = _expect(L, i + 1, "fc")
    if fc.attrs["bias_mode"] != 1 or fc.attrs["num_inputs"] != ch or i + 2 != len(L):
        raise DlibFormatError("expected a final fc_no_bias over the last stage's channels")
    sd["fc.weight"] = np.ascontiguousarray(fc.arrays["weight"].T)
    config = {
        "stem_channels": stem.attrs["num_filters"],
        "stages": [tuple(s) for s in stages],
        "embedding_dim": fc.attrs["num_outputs"],
        "input_size": net.input.attrs["nr"],
        "avg_rgb": tuple(float(v) for v in net.input.attrs["avg_rgb"]),
    }
    return config, sd
