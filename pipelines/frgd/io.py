"""Image loading and saving in one module.

* :func:`load_image` / :func:`load_image_bytes` read JPEG, PNG, WebP, TIFF and BMP files into a :class:`LoadedImage`
  (``rgb`` ``(H, W, 3)`` uint8 or uint16, optional ``alpha`` ``(H, W)``), with the EXIF orientation applied and
  grayscale / palette / LA / RGBA / CMYK / 16-bit inputs handled. Every failure (missing, unreadable, empty, corrupt,
  truncated, not an image, too many pixels) raises the one error type :class:`ImageLoadError`.
* :func:`read_file_bytes` is the one way user files are read: regular files only (no pipes, devices or folders),
  at most :data:`MAX_FILE_BYTES`, enforced while reading.
* :func:`save_image` writes atomically (temp file in the same folder + rename), never over an existing file unless
  ``overwrite=True`` and never over a ``protect``-ed path (the input photo), and embeds :class:`Provenance` metadata
  (PNG iTXt chunks, JPEG/WebP EXIF, TIFF ImageDescription). :func:`read_provenance` reads it back.
  :func:`save_bytes` is the same protected atomic save for any bytes (JSON reports, sessions) and
  :func:`check_output` its up-front check, run before any work. Temp files of interrupted saves are removed on
  SIGINT/SIGTERM (:func:`remove_pending_temps`) and stale ones of crashed saves on the next save to that folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import stat
import struct
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import FRGDError, InputError

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485
"""Largest image (width x height) :func:`load_image` decodes by default (decompression-bomb guard). Equal to Pillow's
default ``Image.MAX_IMAGE_PIXELS``, so whatever would trigger Pillow's DecompressionBombWarning is refused too."""

MAX_FILE_BYTES = 1 << 30
"""Largest file :func:`read_file_bytes` reads (1 GiB): images, session files."""

STALE_TEMP_SECONDS = 600
"""Temp files of our own atomic saves older than this (seconds) are left-overs of a crashed save: removed on the next
save to the same folder."""

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP")
"""Pillow format names :func:`load_image` accepts (multi-picture JPEGs from cameras open as "MPO")."""

SAVE_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
"""File extensions :func:`save_image` writes, mapped to their format."""

PROVENANCE_KEY = "frgd:provenance"
IDENTITY_FLAG_KEY = "frgd:identity-changed"

_EXIF_ORIENTATION = 0x0112
_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_SOFTWARE = 0x0131
_EXIF_IFD = 0x8769
_EXIF_USER_COMMENT = 0x9286
_TIFF_BITS_PER_SAMPLE = 258


class ImageLoadError(InputError):
    """An image file could not be loaded (missing, unreadable, empty, corrupt, truncated, not an image, too large)."""


# ----------------------------------------------------------------------------------------------------------- reading


def open_regular_file(
    path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, fail: Callable[[str], Exception] | None = None
) -> io.BufferedReader:
    """Open ``path`` for binary reading if it is a regular file of at most ``limit`` bytes; pipes, devices, sockets
    and folders are refused without blocking. Errors are ``fail(reason)`` (default :class:`InputError`)."""
    p = Path(path)
    make = fail or (lambda reason: InputError(f"cannot read {p}: {reason}"))
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer (regular files ignore the flag)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise make("file not found") from None
    except IsADirectoryError:
        raise make("it is a folder, not a file") from None
    except OSError as err:
        raise make(f"cannot open the file ({err.strerror or err})") from err
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise make("it is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise make("not a regular file (a pipe, device or socket)")
        if st.st_size > limit:
            raise make(f"file is too large ({st.st_size} bytes > limit {limit})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file_bytes(
    path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, fail: Callable[[str], Exception] | None = None
) -> bytes:
    """The content of the regular file ``path`` (:func:`open_regular_file`), at most ``limit`` bytes, checked while
    reading too (a file that grows or lies about its size cannot exhaust memory)."""
    make = fail or (lambda reason: InputError(f"cannot read {path}: {reason}"))
    with open_regular_file(path, limit=limit, fail=make) as f:
        try:
            data = f.read(limit + 1)
        except OSError as err:
            raise make(f"cannot read the file ({err.strerror or err})") from err
    if len(data) > limit:
        raise make(f"file is too large (more than the limit of {limit} bytes)")
    return data


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


def to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float array -> float32 in ``[0, 1]`` (same shape)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float ``[0, 1]`` array -> uint8 with rounding (same shape)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.round(np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0) * 255.0).astype(np.uint8)


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
        orientation = _orientation(im)
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


def _orientation(im: Any) -> int:
    """EXIF orientation tag (1..8), 1 when absent or unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF must not stop loading the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``(H, W[, C])`` array, like ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return np.swapaxes(arr, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def _is_16bit_color(im: Any, data: bytes, fmt: str) -> bool:
    """True for 16-bit-per-channel colour PNG/TIFF, which Pillow would truncate to 8 bits."""
    if fmt == "PNG":
        # IHDR: signature(8) length(4) type(4) width(4) height(4) bit depth(1) colour type(1)
        return len(data) >= 26 and data[24] == 16 and data[25] in (2, 4, 6)
    if fmt == "TIFF":
        bits = im.tag_v2.get(_TIFF_BITS_PER_SAMPLE) if hasattr(im, "tag_v2") else None
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


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Adam7 passes: (x start, y start, x step, y step)."""


def _check_png_stream(data: bytes) -> None:
    """Validate a PNG's chunk structure, CRCs and image data size before OpenCV sees it (libpng prints its own
    complaints about damaged files straight to stderr). Raises ValueError naming the defect."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("PNG header is truncated")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if channels is None or depth not in (1, 2, 4, 8, 16) or interlace not in (0, 1):
        raise ValueError(f"invalid PNG header (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    pos, idat, ended = 8, [], False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 8 : end - 4]
        if struct.unpack(">I", data[end - 4 : end])[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        pos = end
    if not ended:
        raise ValueError("PNG data is truncated (no IEND chunk)")

    def row_bytes(width: int) -> int:
        return 1 + (width * channels * depth + 7) // 8 if width else 0

    if interlace:
        expected = sum(
            row_bytes(max(0, (w - x0 + dx - 1) // dx)) * max(0, (h - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7
            if (w - x0 + dx - 1) // dx > 0
        )
    else:
        expected = row_bytes(w) * h
    dec = zlib.decompressobj()
    try:
        raw = dec.decompress(b"".join(idat), expected + 1)
    except zlib.error as err:
        raise ValueError(f"PNG image data is corrupt ({err})") from err
    if len(raw) != expected:
        raise ValueError(f"PNG image data has {len(raw)} bytes, the header needs {expected}")


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

    if data[:8] == b"\x89PNG\r\n\x1a\n":
        _check_png_stream(data)
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


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


# -------------------------------------------------------------------------------------------------------- provenance


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Provenance:
    """What produced an output image; embedded in saved files by :func:`save_image`.

    ``identity_changed`` must be True for every edit that can change who the face looks like (diffusion restoration,
    identity guidance); the saved file then carries a human-readable ``frgd:identity-changed`` flag.
    """

    program: str = "FRGD Studio"
    version: str = __version__
    model: str | None = None
    seed: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    reference_hashes: dict[str, str] = field(default_factory=dict)
    identity_changed: bool = False
    source_hash: str | None = None
    created: str = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Build from a dict; unknown keys are ignored (files written by newer versions still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, default=str)

    def summary(self) -> str:
        """One human-readable line (used for EXIF ImageDescription)."""
        parts = [f"{self.program} {self.version}"]
        if self.model:
            parts.append(f"model={self.model}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        parts.append("IDENTITY CHANGED: this face was generated/edited" if self.identity_changed else "identity kept")
        return "; ".join(parts)


# ------------------------------------------------------------------------------------------------------------ saving


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def _prepare_pixels(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"cannot save an image of shape {rgb.shape}; expected (H, W, 3) RGB")
    if rgb.shape[2] == 4:
        if alpha is None:
            alpha = rgb[:, :, 3]
        rgb = rgb[:, :, :3]
    if rgb.dtype not in (np.uint8, np.uint16):
        rgb = to_uint8(rgb)
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[:, :, 0]
        if alpha.shape != rgb.shape[:2]:
            raise InputError(f"alpha shape {alpha.shape} does not match the image {rgb.shape[:2]}")
        if alpha.dtype != rgb.dtype:
            a = to_float(alpha)
            peak, dt = (65535.0, np.uint16) if rgb.dtype == np.uint16 else (255.0, np.uint8)
            alpha = np.round(a * peak).astype(dt)
    return np.ascontiguousarray(rgb), None if alpha is None else np.ascontiguousarray(alpha)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _itxt(key: str, text: str) -> bytes:
    # keyword \0 compression-flag compression-method language-tag \0 translated-keyword \0 text (UTF-8)
    payload = key.encode("latin-1") + b"\x00\x00\x00" + b"\x00" + b"\x00" + text.encode("utf-8")
    return _png_chunk(b"iTXt", payload)


def _png_text_chunks(provenance: Provenance | None) -> list[bytes]:
    chunks = [_itxt("Software", f"FRGD Studio {__version__}")]
    if provenance is not None:
        chunks.append(_itxt(PROVENANCE_KEY, provenance.to_json()))
        chunks.append(_itxt(IDENTITY_FLAG_KEY, "true" if provenance.identity_changed else "false"))
        chunks.append(_itxt("Description", provenance.summary()))
    return chunks


def _insert_png_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    """Insert ancillary chunks right after IHDR (PNG signature 8 bytes + IHDR 25 bytes)."""
    ihdr_end = 8 + 25
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("encoder did not produce a PNG")
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _exif_bytes(provenance: Provenance | None) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[_EXIF_SOFTWARE] = f"FRGD Studio {__version__}"
    if provenance is not None:
        exif[_EXIF_IMAGE_DESCRIPTION] = provenance.summary()
        ifd = exif.get_ifd(_EXIF_IFD)
        ifd[_EXIF_USER_COMMENT] = b"ASCII\x00\x00\x00" + provenance.to_json().encode("ascii")
    return exif.tobytes()


def _encode(fmt: str, rgb: np.ndarray, alpha: np.ndarray | None, provenance: Provenance | None, quality: int,
            icc_profile: bytes | None) -> bytes:  # fmt: skip
    from PIL import Image

    sixteen = rgb.dtype == np.uint16
    if sixteen and fmt in ("PNG", "TIFF"):
        import cv2

        arr = rgb[:, :, ::-1] if alpha is None else np.dstack([rgb[:, :, ::-1], alpha])
        ok, buf = cv2.imencode("." + fmt.lower().replace("tiff", "tif"), np.ascontiguousarray(arr))
        if not ok:
            raise FRGDError(f"OpenCV could not encode a 16-bit {fmt}")
        out = buf.tobytes()
        if fmt == "PNG":
            return _insert_png_chunks(out, _png_text_chunks(provenance))
        if provenance is not None:
            logger.warning("16-bit TIFF is written without provenance metadata; save as PNG to keep it")
        return out
    if sixteen:
        rgb = to_uint8(rgb)
        alpha = None if alpha is None else to_uint8(alpha)
    if alpha is not None and fmt in ("JPEG", "BMP"):
        logger.info("%s has no alpha channel; transparency is dropped", fmt)
        alpha = None
    im = Image.fromarray(rgb, "RGB") if alpha is None else Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    buf = io.BytesIO()
    kw: dict[str, Any] = {}
    if icc_profile:
        kw["icc_profile"] = icc_profile
    if fmt == "PNG":
        im.save(buf, "PNG", compress_level=6, **kw)
        return _insert_png_chunks(buf.getvalue(), _png_text_chunks(provenance))
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=int(quality), subsampling=0 if quality >= 90 else 2, exif=_exif_bytes(provenance),
                **kw)  # fmt: skip
    elif fmt == "WEBP":
        im.save(
            buf, "WEBP", quality=int(quality), lossless=quality >= 100, exact=True, exif=_exif_bytes(provenance), **kw
        )
    elif fmt == "TIFF":
        info: dict[int, Any] = {_EXIF_SOFTWARE: f"FRGD Studio {__version__}"}
        if provenance is not None:
            info[_EXIF_IMAGE_DESCRIPTION] = provenance.to_json()
        im.save(buf, "TIFF", compression="tiff_deflate", tiffinfo=info, **kw)
    elif fmt == "BMP":
        if provenance is not None:
            logger.warning("BMP cannot hold metadata; the provenance is not embedded (save as PNG to keep it)")
        im.save(buf, "BMP")
    else:  # pragma: no cover - guarded by SAVE_EXTENSIONS
        raise InputError(f"unsupported output format {fmt}")
    return buf.getvalue()


def save_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    provenance: Provenance | None = None,
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
    quality: int = 95,
    icc_profile: bytes | None = None,
) -> Path:
    """Save ``rgb`` ``(H, W, 3)`` uint8/uint16/float[0,1] (optional ``alpha`` ``(H, W)``) atomically; return the path.

    The format comes from the extension (png/jpg/jpeg/webp/tif/tiff/bmp). Alpha is kept for PNG, WebP and TIFF.
    Raises :class:`InputError` when the file exists and ``overwrite`` is False, when ``path`` is one of ``protect``
    (e.g. the input photo; even with ``overwrite``), or for an unknown extension; :class:`FRGDError` when writing fails.
    """
    out = Path(path)
    fmt = SAVE_EXTENSIONS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot save {out}: unknown extension (use one of {', '.join(sorted(SAVE_EXTENSIONS))})")
    check_output(out, overwrite=overwrite, protect=protect)
    if not (0 <= int(quality) <= 100):
        raise InputError(f"quality must be 0..100, got {quality}")
    pixels, a = _prepare_pixels(rgb, alpha)
    try:
        data = _encode(fmt, pixels, a, provenance, int(quality), icc_profile)
    except FRGDError:
        raise
    except (OSError, ValueError) as err:  # e.g. larger than the format allows (WebP 16383 px, JPEG 65500 px)
        reason = " ".join(str(err).split())
        raise FRGDError(f"cannot save {out} as {fmt}: {reason}; try PNG or TIFF") from err
    save_bytes(out, data, overwrite=overwrite, protect=protect)
    logger.debug("saved %s (%s, %d bytes)", out, fmt, len(data))
    return out


def check_output(
    path: str | os.PathLike[str], *, overwrite: bool = False, protect: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Up-front check of an output path (run it before any work): :class:`InputError` when ``path`` is one of
    ``protect`` (the inputs: same path, symlink or hard link; even with ``overwrite``), a folder, or an existing file
    while ``overwrite`` is False. Returns ``path`` as a :class:`Path`."""
    out = Path(path)
    for p in protect:
        if _same_path(out, Path(p)):
            raise InputError(f"refusing to write {out}: it is an input image or file; choose another output file")
    if out.is_dir():
        raise InputError(f"cannot write {out}: it is a folder")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(f"{out} already exists; choose another name or allow overwriting (--overwrite)")
    return out


_PENDING_TEMPS: set[Path] = set()
_PENDING_LOCK = threading.Lock()


def remove_pending_temps() -> None:
    """Delete the temp files of saves in progress (called on SIGTERM; the saves' own clean-up covers SIGINT)."""
    with _PENDING_LOCK:
        pending = list(_PENDING_TEMPS)
    for tmp in pending:
        with contextlib.suppress(OSError):
            tmp.unlink()


def remove_stale_temps(
    folder: str | os.PathLike[str], *, max_age: float = STALE_TEMP_SECONDS, suffix: str = ".tmp"
) -> list[Path]:
    """Delete our own temp files (``.NAME.XXXXXXXX.tmp``, as ``tempfile.mkstemp(prefix=".NAME.", suffix=suffix)``
    names them; regular, ours, older than ``max_age`` seconds) that a crashed or killed save left in ``folder``;
    return them. Anything else is left alone."""
    pattern = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(suffix) + "$")
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not pattern.match(e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < max_age:
                continue
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            os.unlink(e.path)
        except OSError:
            continue
        removed.append(Path(e.path))
        logger.info("removed %s, left by an interrupted save", e.path)
    return removed


def save_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:  # fmt: skip
    """Write ``data`` to ``path`` atomically with the rules of :func:`check_output` (the protected save behind
    :func:`save_image`, JSON reports and session files). :class:`FRGDError` when writing fails."""
    out = check_output(path, overwrite=overwrite, protect=protect)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FRGDError(f"cannot write {out}: {err.strerror or err}") from err
    remove_stale_temps(out.parent)
    tmp: Path | None = None
    try:
        with _PENDING_LOCK:  # registered at once, so a SIGTERM handler finds it
            fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            tmp = Path(tmp_name)
            _PENDING_TEMPS.add(tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; give the usual permissions
            os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, out)
        else:
            _publish_no_clobber(tmp, out)
    except FileExistsError as err:
        raise InputError(f"{out} already exists; choose another name or allow overwriting (--overwrite)") from err
    except OSError as err:
        raise FRGDError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with _PENDING_LOCK:
                _PENDING_TEMPS.discard(tmp)
    return out


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _publish_no_clobber(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out`` atomically, failing with FileExistsError if ``out`` appeared meanwhile."""
    try:
        os.link(tmp, out)  # atomic and fails if ``out`` exists
    except FileExistsError:
        raise
    except OSError:  # filesystems without hard links
        if out.exists():
            raise FileExistsError(str(out)) from None
        os.replace(tmp, out)


# ----------------------------------------------------------------------------------------------- reading provenance


def _parse_json(text: Any) -> dict[str, Any] | None:
    if isinstance(text, bytes):
        for prefix in (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"\x00" * 8):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return None
    text = text.strip("\x00 \n")
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The :class:`Provenance` dict embedded by :func:`save_image`, or ``None`` when the file has none."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            info = dict(im.info)
            exif = im.getexif()
            tags = dict(getattr(im, "tag_v2", {}) or {})
    except Exception as err:  # noqa: BLE001
        raise ImageLoadError(f"cannot read metadata of {path}: {type(err).__name__}: {err}") from err
    if PROVENANCE_KEY in info:
        data = _parse_json(info[PROVENANCE_KEY])
        if data is not None:
            return data
    try:
        comment = exif.get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    except Exception:  # noqa: BLE001
        comment = None
    for candidate in (comment, exif.get(_EXIF_IMAGE_DESCRIPTION), tags.get(_EXIF_IMAGE_DESCRIPTION)):
        data = _parse_json(candidate)
        if data is not None and data.get("program"):
            return data
    return None


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IDENTITY_FLAG_KEY",
    "PROVENANCE_KEY",
    "SAVE_EXTENSIONS",
    "ImageLoadError",
    "LoadedImage",
    "Provenance",
    "apply_orientation",
    "check_output",
    "file_sha256",
    "load_image",
    "load_image_bytes",
    "load_rgb",
    "open_regular_file",
    "read_file_bytes",
    "read_provenance",
    "remove_pending_temps",
    "remove_stale_temps",
    "save_bytes",
    "save_image",
    "to_float",
    "to_uint8",
]
