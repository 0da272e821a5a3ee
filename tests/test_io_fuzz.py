"""Fuzz frgd.io loading with hypothesis: random bytes, truncated / bit-flipped valid files and random headers.

Contract: ``load_image_bytes`` / ``load_image`` either return a valid image or raise :class:`ImageLoadError`;
nothing else may escape. 2,900 examples in total (see ``EXAMPLES``). ``max_pixels`` is lowered so that a flipped
header cannot make a test allocate gigabytes (the limit itself is what is being exercised then).
"""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from frgd.io import ImageLoadError, LoadedImage, load_image, load_image_bytes

MAX_PIXELS = 1 << 18
EXAMPLES = {"random": 500, "truncated": 500, "bitflip": 1200, "header": 500, "file": 200}
FUZZ = {"deadline": None, "derandomize": True, "suppress_health_check": [HealthCheck.too_slow], "database": None}


def _valid_files() -> dict[str, bytes]:
    """Small valid files of every supported format and a few modes."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (12, 16), dtype=np.uint8)])
    out: dict[str, bytes] = {}

    def pil(key: str, arr: np.ndarray, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        im = Image.fromarray(arr)
        if key.endswith("cmyk"):
            im = im.convert("CMYK")
        if key.endswith("_p"):
            im = im.convert("P")
        im.save(buf, fmt, **kw)
        out[key] = buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    pil("png", rgb, "PNG")
    pil("png_rgba", rgba, "PNG")
    pil("png_p", rgb, "PNG")
    pil("jpeg", rgb, "JPEG", quality=80, exif=exif.tobytes())
    pil("jpeg_progressive", rgb, "JPEG", quality=60, progressive=True)
    pil("jpeg_cmyk", rgb, "JPEG", quality=90)
    pil("webp", rgb, "WEBP", quality=80)
    pil("webp_lossless", rgba, "WEBP", lossless=True)
    pil("tiff", rgb, "TIFF")
    pil("tiff_deflate", rgba, "TIFF", compression="tiff_deflate")
    pil("bmp", rgb, "BMP")
    pil("bmp_p", rgb, "BMP")
    ok, buf = cv2.imencode(".png", (rgb.astype(np.uint16) * 257)[:, :, ::-1].copy())
    assert ok
    out["png16"] = buf.tobytes()
    ok, buf = cv2.imencode(".tif", (rgb.astype(np.uint16) * 257)[:, :, ::-1].copy())
    assert ok
    out["tiff16"] = buf.tobytes()
    return out


VALID = _valid_files()
NAMES = sorted(VALID)
MAGICS = [
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff\xe0",
    b"\xff\xd8\xff\xe1",
    b"\xff\xd8\xff\xdb",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x00\x00\x00\x00WEBPVP8L",
    b"RIFF\x00\x00\x00\x00WEBPVP8X",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
]


def _check(data: bytes, name: str = "fuzz") -> None:
    try:
        img = load_image_bytes(data, name, max_pixels=MAX_PIXELS)
    except ImageLoadError as err:
        msg = str(err)
        assert name in msg and "\n" not in msg
        return
    _assert_valid(img)


def _assert_valid(img: LoadedImage) -> None:
    assert isinstance(img, LoadedImage)
    assert img.rgb.ndim == 3 and img.rgb.shape[2] == 3
    assert img.rgb.dtype in (np.uint8, np.uint16)
    assert img.rgb.shape[0] * img.rgb.shape[1] <= MAX_PIXELS
    assert img.bit_depth in (8, 16)
    if img.alpha is not None:
        assert img.alpha.shape == img.rgb.shape[:2] and img.alpha.dtype == img.rgb.dtype
    f = img.to_float()
    assert f.dtype == np.float32 and 0.0 <= float(f.min()) and float(f.max()) <= 1.0


def test_valid_files_load() -> None:
    for name, data in VALID.items():
        img = load_image_bytes(data, name)
        _assert_valid(img)
        assert img.rgb.shape in ((12, 16, 3), (16, 12, 3)), name
    assert load_image_bytes(VALID["png16"]).bit_depth == 16


@settings(max_examples=EXAMPLES["random"], **FUZZ)
@given(st.binary(min_size=0, max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=EXAMPLES["truncated"], **FUZZ)
@given(st.sampled_from(NAMES), st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncated(name: str, frac: float) -> None:
    data = VALID[name]
    _check(data[: int(len(data) * frac)], name)


@settings(max_examples=EXAMPLES["bitflip"], **FUZZ)
@given(
    st.sampled_from(NAMES),
    st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
    st.booleans(),
)
def test_bit_flipped(name: str, flips: list[tuple[float, int]], header_only: bool) -> None:
    data = bytearray(VALID[name])
    span = min(len(data), 64) if header_only else len(data)  # header flips hit size/type fields more often
    for pos, xor in flips:
        data[int(pos * span)] ^= xor
    _check(bytes(data), name)


@settings(max_examples=EXAMPLES["header"], **FUZZ)
@given(st.sampled_from(MAGICS), st.binary(min_size=0, max_size=512))
def test_random_headers(magic: bytes, tail: bytes) -> None:
    _check(magic + tail, "header")


_TMP = Path(tempfile.mkdtemp(prefix="frgd_io_fuzz_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


@settings(max_examples=EXAMPLES["file"], **FUZZ)
@given(st.sampled_from(NAMES), st.integers(0, 10_000), st.binary(min_size=0, max_size=32))
def test_through_files(name: str, cut: int, junk: bytes) -> None:
    """The path API behaves the same: a damaged file on disk raises ImageLoadError naming the path."""
    data = VALID[name]
    data = data[: cut % (len(data) + 1)] + junk
    p = _TMP / f"{name}.bin"
    p.write_bytes(data)
    try:
        img = load_image(p, max_pixels=MAX_PIXELS)
    except ImageLoadError as err:
        assert str(p) in str(err)
        return
    _assert_valid(img)


def test_mutations_reach_both_outcomes() -> None:
    """The mutations are not all trivially rejected nor all harmless: a seeded sample of the bit-flip strategy both
    decodes some images and rejects others (otherwise the fuzz tests above would exercise only one path)."""
    rng = np.random.default_rng(0)
    loaded = rejected = 0
    for k in range(200):
        data = bytearray(VALID[NAMES[k % len(NAMES)]])
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
        try:
            _assert_valid(load_image_bytes(bytes(data), "flip", max_pixels=MAX_PIXELS))
            loaded += 1
        except ImageLoadError:
            rejected += 1
    assert loaded >= 20 and rejected >= 20, (loaded, rejected)
