"""Decoding: JPEG, PNG, WebP, TIFF and BMP files into a :class:`LoadedImage` with the EXIF orientation applied.

Grayscale / palette / LA / RGBA / CMYK / 16-bit inputs are handled (16-bit colour PNG/TIFF through OpenCV). Every
failure (missing, unreadable, empty, corrupt, truncated, not an image, too many pixels) raises the one error type
:class:`ImageLoadError`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .exif import TIFF_BITS_PER_SAMPLE, apply_orientation, read_orientation
from .files import read_file_bytes
from .pixels import to_float, to_uint8
from .png_chunks import PNG_SIGNATURE, check_png_stream

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485
"""Largest image (width x height) :func:`load_image` decodes by default (decompression-bomb guard). Equal to Pillow's
default ``Image.MAX_IMAGE_PIXELS``, so whatever would trigger Pillow's DecompressionBombWarning is refused too."""

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP")
"""Pillow format names :func:`load_image` accepts (multi-picture JPEGs from cameras open as "MPO")."""


class ImageLoadError(InputError):
    """An image file could not be loaded (missing, unreadable, empty, corrupt, truncated, not an image, too large)."""


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 or uint16 RGB, EXIF orientation applied.
        alpha: ``(H, W)`` alpha of the same dtype, or ``None`` when the file has no transparency.
        path: the file it came from (``None`` for bytes).
        format: Pillow's format name (``"JPEG"``, ``"PNG"``, ...).
        bit_depth: 8 or 16 (bits per channel of ``rgb``).
        icc_profile: the embedded ICC profile, if any (pixels are NOT colour-converted).
        exif_applied: True when an EXIF orientation other than "normal" was applied.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    format: str = ""
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif_applied: bool = False

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def to_float(self) -> np.ndarray:
        """``(H, W, 3)`` float32 RGB in ``[0, 1]``."""
        return to_float(self.rgb)

    def alpha_float(self) -> np.ndarray | None:
        """``(H, W)`` float32 alpha in ``[0, 1]`` or ``None``."""
        return None if self.alpha is None else to_float(self.alpha)

    def to_uint8(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB (16-bit reduced with rounding)."""
        return to_uint8(self.rgb)


def _fail(name: str, reason: str) -> ImageLoadError:
    return ImageLoadError(f"cannot load image {name}: {reason}")


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load an image file (JPEG/PNG/WebP/TIFF/BMP) into a :class:`LoadedImage`; raises :class:`ImageLoadError`."""
    p = Path(path)
    name = str(p)
    data = read_file_bytes(p, fail=lambda reason: _fail(name, reason))
    img = load_image_bytes(data, name, max_pixels=max_pixels)
    img.path = p
    return img


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image as ``(H, W, 3)`` uint8 RGB (alpha dropped, 16-bit reduced with rounding)."""
    return to_uint8(load_image(path, max_pixels=max_pixels).rgb)


def load_mask(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load a mask image (white = on) as ``(H, W)`` float32 in ``[0, 1]``: the mean of its RGB channels, any depth."""
    return to_float(load_image(path, max_pixels=max_pixels).rgb).mean(axis=2).astype(np.float32)


def load_image_bytes(data: bytes, name: str = "<bytes>", *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode an encoded image held in memory; ``name`` appears in error messages. Raises :class:`ImageLoadError`."""
    from PIL import Image

    if not data:
        raise _fail(name, "the file is empty")
    Image.init()
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Our own header check below enforces ``max_pixels``; Pillow's warning threshold is a different number.
            # Pillow's warnings about damaged metadata ("Corrupt EXIF data", ...) are logged, not shown.
            warnings.simplefilter("always")
            im = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
        _log_warnings(name, caught)
    except Image.DecompressionBombError as err:
        raise _bomb(name, err, max_pixels) from err
    except Image.UnidentifiedImageError as err:
        raise _fail(name, "not a supported image (JPEG, PNG, WebP, TIFF or BMP expected)") from err
    except Exception as err:  # noqa: BLE001 - Pillow raises many types on corrupt headers
        raise _fail(name, f"corrupt image header ({type(err).__name__}: {err})") from err

    try:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise _fail(name, f"invalid size {w}x{h}")
        if w * h > max_pixels:
            raise _fail(name, f"too many pixels ({w}x{h} = {w * h} > limit {max_pixels})")
        fmt = str(im.format or "")
        icc = im.info.get("icc_profile") or None
        orientation = read_orientation(im)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rgb, alpha, depth = _decode(im, data, fmt)
            _log_warnings(name, caught)
        except ImageLoadError:
            raise
        except Image.DecompressionBombError as err:
            raise _bomb(name, err, max_pixels) from err
        except MemoryError as err:
            raise _fail(name, "not enough memory to decode it") from err
        except Exception as err:  # noqa: BLE001 - decoders raise OSError/ValueError/SyntaxError/struct.error/...
            raise _fail(name, f"corrupt or truncated image data ({type(err).__name__}: {err})") from err
    finally:
        with contextlib.suppress(Exception):
            im.close()

    if rgb.shape[:2] != (h, w) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise _fail(name, f"decoded shape {rgb.shape} does not match the header size {w}x{h}")
    applied = orientation in (2, 3, 4, 5, 6, 7, 8)
    if applied:
        rgb = apply_orientation(rgb, orientation)
        alpha = apply_orientation(alpha, orientation) if alpha is not None else None
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        path=None,
        format=fmt,
        bit_depth=depth,
        icc_profile=icc if isinstance(icc, bytes) else None,
        exif_applied=applied,
    )


def _bomb(name: str, err: Exception, max_pixels: int) -> ImageLoadError:
    """Pillow's decompression-bomb error restated with our limit (Pillow's own threshold is another number)."""
    found = re.search(r"\((\d+) pixels\)", str(err))
    if found and int(found.group(1)) > max_pixels:
        return _fail(name, f"too many pixels ({found.group(1)} > limit {max_pixels})")
    return _fail(name, f"too many pixels (Pillow's decompression-bomb guard: {' '.join(str(err).split())})")


def _log_warnings(name: str, caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        logger.debug("%s: %s: %s", name, w.category.__name__, w.message)


def _is_16bit_color(im: Any, data: bytes, fmt: str) -> bool:
    """True for 16-bit-per-channel colour PNG/TIFF, which Pillow would truncate to 8 bits."""
    if fmt == "PNG":
        # IHDR: signature(8) length(4) type(4) width(4) height(4) bit depth(1) colour type(1)
        return len(data) >= 26 and data[24] == 16 and data[25] in (2, 4, 6)
    if fmt == "TIFF":
        bits = im.tag_v2.get(TIFF_BITS_PER_SAMPLE) if hasattr(im, "tag_v2") else None
        if bits is None:
            return False
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(int(b) == 16 for b in bits) and not str(im.mode).startswith("I;16")
    return False


def _decode(im: Any, data: bytes, fmt: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Decode pixels -> (rgb (H,W,3), alpha (H,W) or None, bit depth)."""
    if _is_16bit_color(im, data, fmt):
        return _decode_cv2_16(data)
    im.load()
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = np.asarray(im).astype(np.uint16)
        return np.repeat(g[:, :, None], 3, axis=2), None, 16
    if mode == "I":
        g = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return np.repeat(g[:, :, None], 3, axis=2), None, 16
    if mode == "F":
        f = np.asarray(im).astype(np.float64)
        f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(f.max()) if f.size else 0.0
        scale = 1.0 if peak <= 1.0 else (255.0 if peak <= 255.0 else 65535.0)
        g = np.round(np.clip(f / scale, 0.0, 1.0) * 65535.0).astype(np.uint16)
        return np.repeat(g[:, :, None], 3, axis=2), None, 16
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[:, :, :3], rgba[:, :, 3], 8
    if mode != "RGB":
        im = im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(im), None, 8


def _quiet_cv2(fn: Callable[[], Any]) -> Any:
    """``fn()`` with OpenCV's logging silenced: its libtiff / libpng complaints about a damaged file would reach stderr
    before our own one-line error (the failure itself is reported by the caller)."""
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:  # pragma: no cover - OpenCV builds without the logging module
        return fn()
    previous = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return fn()
    finally:
        log.setLogLevel(previous)


def _decode_cv2_16(data: bytes) -> tuple[np.ndarray, np.ndarray | None, int]:
    import cv2

    if data[:8] == PNG_SIGNATURE:
        check_png_stream(data)
    arr = _quiet_cv2(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
    if arr is None:
        raise ValueError("OpenCV could not decode the 16-bit image data")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.uint16) * 257
    elif arr.dtype != np.uint16:
        raise ValueError(f"unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2), None, 16
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2), None, 16
    if arr.shape[2] == 2:  # gray + alpha
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1], 16
    if arr.shape[2] == 3:
        return arr[:, :, ::-1], None, 16
    return arr[:, :, 2::-1], arr[:, :, 3], 16
