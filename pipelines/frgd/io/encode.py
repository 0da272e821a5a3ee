"""Encoding and saving: :func:`save_image` writes PNG, JPEG, WebP, TIFF or BMP atomically with :mod:`provenance
<frgd.io.provenance>` metadata, through the protected save of :func:`frgd.io.files.save_bytes`."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FRGDError, InputError
from .files import check_output, save_bytes
from .pixels import to_float, to_uint8
from .png_chunks import iccp, insert_png_chunks
from .provenance import Provenance, exif_bytes, png_text_chunks, tiff_info

logger = logging.getLogger(__name__)

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
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
"""The formats :func:`save_image` writes 16-bit pixels in; the others get them rounded to 8 bits."""


def keeps_16_bits(path: str | os.PathLike[str]) -> bool:
    """True when :func:`save_image` writes 16-bit pixels to ``path`` as 16 bits (by its extension)."""
    return SAVE_EXTENSIONS.get(Path(path).suffix.lower()) in SIXTEEN_BIT_FORMATS


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


def rgb_profile(icc_profile: bytes | None) -> bytes | None:
    """``icc_profile`` when it describes RGB data (its header's colour space, bytes 16-19, is ``"RGB "``), else
    ``None``: a grey or CMYK photo's profile no longer describes its pixels once they are RGB (the loader converts
    them without colour management), and a profile of the wrong colour space makes viewers refuse or misread it."""
    if not icc_profile:
        return None
    if len(icc_profile) < 128 or icc_profile[16:20] != b"RGB ":
        logger.info("colour profile not written: its colour space is %r, the pixels are RGB", bytes(icc_profile[16:20]))
        return None
    return icc_profile


def _encode(fmt: str, rgb: np.ndarray, alpha: np.ndarray | None, provenance: Provenance | None, quality: int,
            icc_profile: bytes | None) -> bytes:  # fmt: skip
    from PIL import Image

    sixteen = rgb.dtype == np.uint16
    if sixteen and fmt in SIXTEEN_BIT_FORMATS:
        import cv2

        arr = rgb[:, :, ::-1] if alpha is None else np.dstack([rgb[:, :, ::-1], alpha])
        ok, buf = cv2.imencode("." + fmt.lower().replace("tiff", "tif"), np.ascontiguousarray(arr))
        if not ok:
            raise FRGDError(f"OpenCV could not encode a 16-bit {fmt}")
        out = buf.tobytes()
        if fmt == "PNG":
            return insert_png_chunks(out, [*([iccp(icc_profile)] if icc_profile else []), *png_text_chunks(provenance)])
        if provenance is not None or icc_profile:
            logger.warning("16-bit TIFF is written without provenance metadata or colour profile; save as PNG to keep "
                           "them")  # fmt: skip
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
        return insert_png_chunks(buf.getvalue(), png_text_chunks(provenance))
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=int(quality), subsampling=0 if quality >= 90 else 2, exif=exif_bytes(provenance),
                **kw)  # fmt: skip
    elif fmt == "WEBP":
        im.save(
            buf, "WEBP", quality=int(quality), lossless=quality >= 100, exact=True, exif=exif_bytes(provenance), **kw
        )
    elif fmt == "TIFF":
        im.save(buf, "TIFF", compression="tiff_deflate", tiffinfo=tiff_info(provenance), **kw)
    elif fmt == "BMP":
        if provenance is not None or icc_profile:
            logger.warning("BMP is written without provenance metadata or colour profile (save as PNG to keep them)")
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

    The format comes from the extension (png/jpg/jpeg/webp/tif/tiff/bmp). Alpha is kept for PNG, WebP and TIFF;
    ``icc_profile`` (the source photo's, :attr:`LoadedImage.icc_profile <frgd.io.decode.LoadedImage>`: pixels are
    never colour-converted, so an output of them must carry it to look the same) is embedded in every format but BMP
    and 16-bit TIFF, when it is an RGB profile (:func:`rgb_profile`).
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
        data = _encode(fmt, pixels, a, provenance, int(quality), rgb_profile(icc_profile))
    except FRGDError:
        raise
    except (OSError, ValueError) as err:  # e.g. larger than the format allows (WebP 16383 px, JPEG 65500 px)
        reason = " ".join(str(err).split())
        raise FRGDError(f"cannot save {out} as {fmt}: {reason}; try PNG or TIFF") from err
    save_bytes(out, data, overwrite=overwrite, protect=protect)
    logger.debug("saved %s (%s, %d bytes)", out, fmt, len(data))
    return out
