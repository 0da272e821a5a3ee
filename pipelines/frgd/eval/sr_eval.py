"""Super-resolution evaluation on the classic benchmarks (Set5, Set14, B100, ...): PSNR/SSIM on Y, shave = scale.

A set folder holds ``HR/<name>.png`` and, optionally, the official MATLAB LR images ``LR_bicubic/X{s}/<name>x{s}.png``.
Each HR image is ``modcrop``-ed to the scale; the LR input is the official file when present, else our MATLAB-exact
``imresize(modcrop(HR), 1/s)`` (bit-identical to the official files where both exist). Outputs are rounded to uint8
and compared on the BT.601 Y channel in float64 (the convention of the published tables); single-channel images
(Set14 ``bridge``) are their own Y and RGB model outputs are reduced to grey by the channel mean.

Models (:func:`available_models`): ``bicubic`` is the protocol of the published bicubic tables (SRCNN/VDSR code):
the HR's Y rounded to 8 bits (MATLAB ``rgb2ycbcr`` on uint8), ``imresize`` by ``1/s`` then ``s`` in double on that Y,
rounded, compared with the rounded HR Y; it reproduces Set5/Set14/B100 to 0.01 dB. ``bicubic-rgb`` is our MATLAB
imresize of the same RGB LR input the other models get (the like-for-like baseline), ``lanczos`` (PIL Lanczos),
``opencv-espcn`` / ``opencv-fsrcnn`` / ``opencv-lapsrn`` (OpenCV ``dnn_superres`` TensorFlow graphs on Y in [0, 1],
CbCr bicubic, exactly as ``cv2.dnn_superres`` does), ``frgd-sr`` (ours) and every upscaler of ``frgd.sr.registry``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FRGDError, InputError, MissingWeightsError
from ..io import ImageLoadError
from ..jobs import CancelToken, ProgressFn, check_cancel, report
from ..metrics.imresize import imresize, modcrop
from ..metrics.psnr_ssim import psnr, ssim, to_y

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
DEFAULT_REF_WEIGHTS = REPO.parent / "shared" / "weights" / "sr_reference"
IMG_EXT = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
BUILTIN_MODELS = ["bicubic", "bicubic-rgb", "lanczos", "opencv-espcn", "opencv-fsrcnn", "opencv-lapsrn", "frgd-sr"]
OPENCV_FILES = {"opencv-espcn": "ESPCN", "opencv-fsrcnn": "FSRCNN", "opencv-lapsrn": "LapSRN"}

SRFn = Callable[[np.ndarray], np.ndarray]
"""``sr(lr)``: LR uint8 ``(h, w, 3)`` or ``(h, w)`` -> SR uint8 ``(s*h, s*w[, 3])``."""


@dataclass
class ImageResult:
    name: str
    psnr: float
    ssim: float
    hr_size: tuple[int, int]
    seconds: float


@dataclass
class SREvalResult:
    """Per-image and mean PSNR/SSIM (Y, shave = scale) of one model on one set at one scale."""

    model: str
    set: str
    set_path: str
    scale: int
    lr_source: str  # "official" (LR_bicubic files), "imresize" (made here) or "mixed"
    psnr: float
    ssim: float
    images: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _read(path: Path) -> np.ndarray:
    """uint8 ``(H, W)`` for grey files (their own Y) or ``(H, W, 3)`` RGB; :class:`ImageLoadError` when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB"):
                im = im.convert("L" if im.mode in ("I;16", "I", "LA") else "RGB")
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        raise ImageLoadError(f"cannot load image {path}: {type(err).__name__}: {err}") from err


def load_set(set_dir: Path, scale: int) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """``[(name, HR uint8, LR uint8, lr_source)]`` of a set folder (``HR/``, optional ``LR_bicubic/X{s}/``)."""
    set_dir = Path(set_dir)
    hr_dir = set_dir / "HR" if (set_dir / "HR").is_dir() else set_dir
    files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMG_EXT) if hr_dir.is_dir() else []
    if not files:
        raise InputError(f"no HR images in {hr_dir} (expected {set_dir}/HR/*.png)")
    out = []
    for p in files:
        hr = modcrop(_read(p), scale)
        lr_path = set_dir / "LR_bicubic" / f"X{scale}" / f"{p.stem}x{scale}.png"
        if lr_path.exists():
            lr, src = _read(lr_path), "official"
            if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
                raise InputError(
                    f"{lr_path} is {lr.shape[:2]}, expected {(hr.shape[0] // scale, hr.shape[1] // scale)}"
                )
        else:
            lr, src = imresize(hr, 1 / scale), "imresize"
        out.append((p.stem, hr, lr, src))
    return out


def sr_metrics(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """``(PSNR, SSIM)`` on Y with ``scale`` px shaved; a grey HR is its own Y and an RGB ``sr`` is averaged to grey."""
    if sr.shape[:2] != hr.shape[:2]:
        raise FRGDError(f"SR output is {sr.shape[:2]}, HR is {hr.shape[:2]}")
    if hr.ndim == 2 and sr.ndim == 3:
        sr = np.round(sr.astype(np.float64).mean(axis=2)).astype(np.uint8)
    a, b = to_y(sr), to_y(hr)
    if scale > 0:
        a, b = a[scale:-scale, scale:-scale], b[scale:-scale, scale:-scale]
    return psnr(a, b), ssim(a, b)


# --------------------------------------------------------------------------------------------------------- models


def bicubic_published(hr: np.ndarray, scale: int) -> tuple[float, float]:
    """``(PSNR, SSIM)`` of bicubic by the published-table protocol (SRCNN/VDSR MATLAB code) for one modcropped HR.

    ``Y = uint8(rgb2ycbcr(HR))(:, :, 1)``; ``SR = uint8(imresize(imresize(double(Y), 1/s), s))``; shave ``s``.
    """
    y = np.round(to_y(hr))
    sr = np.clip(np.round(imresize(imresize(y, 1 / scale), scale)), 0, 255)
    a, b = sr[scale:-scale, scale:-scale], y[scale:-scale, scale:-scale]
    return psnr(a, b), ssim(a, b)


def _bicubic(scale: int) -> SRFn:
    return lambda lr: imresize(lr, scale)


def _lanczos(scale: int) -> SRFn:
    from PIL import Image

    def f(lr: np.ndarray) -> np.ndarray:
        im = Image.fromarray(lr)
        return np.asarray(im.resize((im.width * scale, im.height * scale), Image.Resampling.LANCZOS))

    return f


def _pb_fields(b: bytes) -> list[tuple[int, int, object, bytes]]:
    """Minimal protobuf wire-format reader: ``[(field, wire_type, value, raw_bytes)]``."""

    def varint(i: int) -> tuple[int, int]:
        r = s = 0
        while True:
            c = b[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r, i

    out, i = [], 0
    while i < len(b):
        start = i
        key, i = varint(i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(i)
        elif w == 2:
            n, i = varint(i)
            v, i = b[i : i + n], i + n
        elif w == 1:
            v, i = b[i : i + 8], i + 8
        elif w == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {w}")
        out.append((f, w, v, b[start:i]))
    return out


def _pb_varint(n: int) -> bytes:
    o = bytearray()
    while True:
        c, n = n & 0x7F, n >> 7
        o.append(c | 0x80 if n else c)
        if not n:
            return bytes(o)


def _pb_bytes(f: int, payload: bytes) -> bytes:
    return _pb_varint((f << 3) | 2) + _pb_varint(len(payload)) + payload


def patch_depth_to_space(graph: bytes) -> bytes:
    """Add the ``blocksize`` attribute OpenCV 5's importer needs to TF ``DepthToSpace`` nodes (which carry
    ``block_size``). GraphDef: field 1 = NodeDef (op = 2, attr map = 5 of {key = 1, AttrValue = 2 {i = 3}})."""
    out = bytearray()
    for f, _w, v, raw in _pb_fields(graph):
        if f == 1:
            node = _pb_fields(v)
            op = next((bytes(x[2]) for x in node if x[0] == 2), b"")
            if op in (b"DepthToSpace", b"SpaceToDepth"):
                keys = {}
                for x in node:
                    if x[0] == 5:
                        entry = _pb_fields(x[2])
                        keys[bytes(entry[0][2])] = entry[1][2] if len(entry) > 1 else b""
                if b"block_size" in keys and b"blocksize" not in keys:
                    bs = next(x[2] for x in _pb_fields(keys[b"block_size"]) if x[0] == 3)
                    attr = _pb_bytes(1, b"blocksize") + _pb_bytes(2, _pb_varint(3 << 3) + _pb_varint(bs))
                    out += _pb_bytes(1, bytes(v) + _pb_bytes(5, attr))
                    continue
        out += raw
    return bytes(out)


def _opencv(name: str, scale: int, ref_weights: Path) -> SRFn:
    import cv2

    path = Path(ref_weights) / f"{OPENCV_FILES[name]}_x{scale}.pb"
    if not path.exists():
        have = sorted(p.name for p in Path(ref_weights).glob(f"{OPENCV_FILES[name]}_x*.pb"))
        raise MissingWeightsError(
            f"{name} x{scale} needs {path} (OpenCV dnn_superres model, Apache-2.0; from "
            f"https://github.com/opencv/opencv_contrib/tree/master/modules/dnn_superres); "
            f"found {have or 'none'} in {ref_weights}; point --ref-weights DIR at the folder"
        )
    # OpenCV 5 fails on these graphs at forward() unless DepthToSpace carries "blocksize"; patching is a no-op else
    net = cv2.dnn.readNetFromTensorflow(np.frombuffer(patch_depth_to_space(path.read_bytes()), np.uint8))

    def f(lr: np.ndarray) -> np.ndarray:
        gray = lr.ndim == 2
        bgr = cv2.cvtColor(lr, cv2.COLOR_GRAY2BGR) if gray else cv2.cvtColor(lr, cv2.COLOR_RGB2BGR)
        ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
        y = ycrcb[:, :, 0].astype(np.float32) / 255.0
        net.setInput(y[None, None])
        out = net.forward()[0, 0]
        y_sr = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
        h, w = y_sr.shape
        crcb = cv2.resize(ycrcb[:, :, 1:], (w, h), interpolation=cv2.INTER_CUBIC)
        sr = cv2.cvtColor(np.dstack([y_sr, crcb]), cv2.COLOR_YCrCb2RGB)
        return y_sr if gray else sr

    return f


def _from_upscaler(up: Callable) -> SRFn:
    import torch

    from ..tensor import image_to_tensor, tensor_to_image

    def f(lr: np.ndarray) -> np.ndarray:
        x = lr if lr.ndim == 3 else np.repeat(lr[:, :, None], 3, axis=2)
        with torch.no_grad():
            y = up(image_to_tensor(x))
        return tensor_to_image(y)

    return f


def available_models() -> list[str]:
    """Every model name ``frgd eval sr`` accepts (built-ins + every upscaler of the SR registry)."""
    from ..sr.registry import available_upscalers

    return BUILTIN_MODELS + [n for n in available_upscalers() if n not in BUILTIN_MODELS]


def get_sr_model(name: str, scale: int, ref_weights: Path | None = None, device: str = "cpu") -> SRFn:
    """The SR function of model ``name`` at ``scale``: uint8 LR ``(h, w[, 3])`` -> uint8 SR."""
    if name == "bicubic":
        raise InputError(
            "'bicubic' is the published-table protocol and works from the HR; use 'bicubic-rgb' as an SR function"
        )
    if name == "bicubic-rgb":
        return _bicubic(scale)
    if name == "lanczos":
        return _lanczos(scale)
    if name in OPENCV_FILES:
        return _opencv(name, scale, Path(ref_weights) if ref_weights else DEFAULT_REF_WEIGHTS)
    from ..sr.registry import available_upscalers, get_upscaler

    if name in available_upscalers():  # frgd-sr, Real-ESRGAN, ...
        return _from_upscaler(get_upscaler(name, scale, device=device))
    raise InputError(f"unknown SR model {name!r}; choose from {', '.join(available_models())}")


# ------------------------------------------------------------------------------------------------------ evaluate


def evaluate_sr(
    model: str,
    set_dir: str | Path,
    scale: int,
    ref_weights: str | Path | None = None,
    device: str = "cpu",
    save_dir: str | Path | None = None,
    sr_fn: SRFn | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SREvalResult:
    """Evaluate ``model`` (or a given ``sr_fn``) on the set at ``set_dir`` and ``scale``; optionally save SR PNGs."""
    if scale not in (2, 3, 4):
        raise InputError(f"scale must be 2, 3 or 4, got {scale}")
    set_dir = Path(set_dir)
    if not set_dir.is_dir():
        raise InputError(f"set folder not found: {set_dir}")
    items = load_set(set_dir, scale)
    published = sr_fn is None and model == "bicubic"
    fn = None
    if sr_fn is not None:
        fn = sr_fn
    elif not published:
        fn = get_sr_model(model, scale, Path(ref_weights) if ref_weights else None, device)
    results: list[ImageResult] = []
    t_all = time.perf_counter()
    for i, (name, hr, lr, _src) in enumerate(items):
        check_cancel(cancel)
        t0 = time.perf_counter()
        if fn is None:
            p, s = bicubic_published(hr, scale)
            results.append(ImageResult(name, p, s, (int(hr.shape[0]), int(hr.shape[1])), time.perf_counter() - t0))
            report(progress, i + 1, len(items), name)
            continue
        sr = fn(lr)
        dt = time.perf_counter() - t0
        if sr.dtype != np.uint8:
            raise FRGDError(f"model {model} returned {sr.dtype}, expected uint8")
        p, s = sr_metrics(sr, hr, scale)
        results.append(ImageResult(name, p, s, (int(hr.shape[0]), int(hr.shape[1])), dt))
        if save_dir is not None:
            from PIL import Image

            out = Path(save_dir) / f"{set_dir.name}_x{scale}_{model}"
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(out / f"{name}.png")
        logger.info("%s x%d %s %s: PSNR %.3f SSIM %.4f (%.2fs)", set_dir.name, scale, model, name, p, s, dt)
        report(progress, i + 1, len(items), name)
    sources = {src for *_, src in items}
    return SREvalResult(
        model=model,
        set=set_dir.name,
        set_path=str(set_dir),
        scale=scale,
        lr_source="hr-y (published protocol)" if fn is None else (sources.pop() if len(sources) == 1 else "mixed"),
        psnr=float(np.mean([r.psnr for r in results])),
        ssim=float(np.mean([r.ssim for r in results])),
        images=results,
        seconds=time.perf_counter() - t_all,
    )
