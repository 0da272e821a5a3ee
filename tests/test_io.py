"""Tests of frgd.io: loading every format and mode, EXIF orientation, bomb guard, safe saving and provenance."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import rgb_profile
from PIL import Image, ImageOps

from frgd.errors import FRGDError, InputError
from frgd.io import (
    DEFAULT_MAX_PIXELS,
    IDENTITY_FLAG_KEY,
    PROVENANCE_KEY,
    SAVE_EXTENSIONS,
    ImageLoadError,
    LoadedImage,
    Provenance,
    apply_orientation,
    file_sha256,
    keeps_16_bits,
    load_image,
    load_image_bytes,
    load_rgb,
    read_provenance,
    save_image,
)


def _smooth(h: int = 24, w: int = 32) -> np.ndarray:
    """Smooth uint8 RGB test image (compresses well, so JPEG error is small)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    return np.round(img * 255).astype(np.uint8)


def _noise(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("ext", ["png", "tif", "tiff", "bmp", "webp"])
def test_lossless_round_trip(tmp_path: Path, ext: str) -> None:
    img = _noise()
    out = save_image(tmp_path / f"a.{ext}", img, quality=100)
    loaded = load_image(out)
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.dtype == np.uint8 and loaded.bit_depth == 8
    np.testing.assert_array_equal(loaded.rgb, img)
    assert loaded.alpha is None
    assert loaded.path == out


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "webp"])
def test_lossy_round_trip(tmp_path: Path, ext: str) -> None:
    img = _smooth()
    loaded = load_image(save_image(tmp_path / f"a.{ext}", img, quality=95))
    assert loaded.rgb.shape == img.shape
    err = np.abs(loaded.rgb.astype(int) - img.astype(int)).mean()
    assert err < 3.0, err
    assert loaded.format in ("JPEG", "WEBP")


def test_to_float_and_load_rgb(tmp_path: Path) -> None:
    img = _noise()
    p = save_image(tmp_path / "a.png", img)
    f = load_image(p).to_float()
    assert f.dtype == np.float32 and f.shape == img.shape
    assert f.min() >= 0.0 and f.max() <= 1.0
    np.testing.assert_allclose(f, img / 255.0, atol=1e-6)
    np.testing.assert_array_equal(load_rgb(p), img)


def test_float_input_is_saved_as_uint8(tmp_path: Path) -> None:
    img = _noise()
    p = save_image(tmp_path / "f.png", img.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(load_rgb(p), img)


# ------------------------------------------------------------------------------------------ EXIF orientation


def _jpeg_with_orientation(path: Path, img: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(path, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())


def test_exif_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    img = np.zeros((40, 80, 3), np.uint8)  # wide image with a red block at the top-left
    img[:16, :16] = (255, 0, 0)
    p = tmp_path / "o6.jpg"
    _jpeg_with_orientation(p, img, 6)
    loaded = load_image(p)
    assert loaded.exif_applied
    assert loaded.rgb.shape == (80, 40, 3)  # portrait after applying the tag
    # rotating 90 degrees clockwise moves the top-left corner to the top-right
    assert loaded.rgb[:12, -12:, 0].mean() > 200 and loaded.rgb[:12, -12:, 1].mean() < 50
    assert loaded.rgb[:12, :12, 0].mean() < 50


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    img = _smooth(20, 30)
    p = tmp_path / f"o{orientation}.jpg"
    _jpeg_with_orientation(p, img, orientation)
    with Image.open(p) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    loaded = load_image(p)
    assert loaded.exif_applied == (orientation != 1)
    np.testing.assert_array_equal(loaded.rgb, ref)


def test_apply_orientation_on_alpha_shape() -> None:
    a = np.arange(6).reshape(2, 3)
    assert apply_orientation(a, 6).shape == (3, 2)
    np.testing.assert_array_equal(apply_orientation(a, 1), a)


# ---------------------------------------------------------------------------------------------------- modes


def _png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def test_grayscale() -> None:
    g = _noise()[:, :, 0]
    loaded = load_image_bytes(_png_bytes(Image.fromarray(g, "L")), "g.png")
    assert loaded.rgb.shape == (*g.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(loaded.rgb[:, :, c], g)


def test_one_bit() -> None:
    b = (_noise()[:, :, 0] > 127).astype(np.uint8) * 255
    loaded = load_image_bytes(_png_bytes(Image.fromarray(b).convert("1")), "b.png")
    np.testing.assert_array_equal(loaded.rgb[:, :, 1], b)


def test_palette_without_and_with_transparency() -> None:
    rgb = _smooth()
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    ref = np.asarray(pal.convert("RGB"))
    loaded = load_image_bytes(_png_bytes(pal), "p.png")
    np.testing.assert_array_equal(loaded.rgb, ref)
    assert loaded.alpha is None
    pal.info["transparency"] = 0
    loaded = load_image_bytes(_png_bytes(pal, transparency=0), "pt.png")
    assert loaded.alpha is not None
    idx = np.asarray(pal)
    np.testing.assert_array_equal(loaded.alpha == 0, idx == 0)


def test_la_and_rgba() -> None:
    g = _noise()[:, :, 0]
    a = _noise(seed=1)[:, :, 0]
    la = Image.merge("LA", [Image.fromarray(g), Image.fromarray(a)])
    loaded = load_image_bytes(_png_bytes(la), "la.png")
    np.testing.assert_array_equal(loaded.rgb[:, :, 2], g)
    np.testing.assert_array_equal(loaded.alpha, a)
    rgba = np.dstack([_noise(), a])
    loaded = load_image_bytes(_png_bytes(Image.fromarray(rgba, "RGBA")), "rgba.png")
    np.testing.assert_array_equal(loaded.rgb, rgba[:, :, :3])
    np.testing.assert_array_equal(loaded.alpha, a)


def test_cmyk_jpeg_and_tiff(tmp_path: Path) -> None:
    rgb = _smooth()
    cmyk = Image.fromarray(rgb).convert("CMYK")
    for fmt, ext in (("JPEG", "jpg"), ("TIFF", "tif")):
        p = tmp_path / f"c.{ext}"
        cmyk.save(p, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
        loaded = load_image(p)
        assert loaded.rgb.shape == rgb.shape and loaded.rgb.dtype == np.uint8
        err = np.abs(loaded.rgb.astype(int) - rgb.astype(int)).mean()
        assert err < 4.0, (fmt, err)


def test_16bit_gray_png() -> None:
    g = (np.arange(12 * 16, dtype=np.uint32).reshape(12, 16) * 300).astype(np.uint16)
    loaded = load_image_bytes(_png_bytes(Image.fromarray(g)), "g16.png")
    assert loaded.bit_depth == 16 and loaded.rgb.dtype == np.uint16
    np.testing.assert_array_equal(loaded.rgb[:, :, 0], g)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_and_rgba(ext: str) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 65536, (10, 14, 3)).astype(np.uint16)
    ok, buf = cv2.imencode(ext, rgb[:, :, ::-1].copy())
    assert ok
    loaded = load_image_bytes(buf.tobytes(), "x" + ext)
    assert loaded.bit_depth == 16
    np.testing.assert_array_equal(loaded.rgb, rgb)
    a = rng.integers(0, 65536, (10, 14)).astype(np.uint16)
    ok, buf = cv2.imencode(ext, np.dstack([rgb[:, :, ::-1], a]))
    loaded = load_image_bytes(buf.tobytes(), "xa" + ext)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    np.testing.assert_array_equal(loaded.alpha, a)


def test_16bit_save_round_trip_and_reduction(tmp_path: Path) -> None:
    rgb = np.random.default_rng(4).integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    p = save_image(tmp_path / "s16.png", rgb, provenance=Provenance(model="m"))
    loaded = load_image(p)
    assert loaded.bit_depth == 16
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert read_provenance(p)["model"] == "m"
    expected = np.round(rgb.astype(np.float64) / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(load_rgb(p), expected)


@pytest.mark.parametrize("ext", sorted(SAVE_EXTENSIONS))
def test_keeps_16_bits_says_what_save_image_writes(tmp_path: Path, ext: str) -> None:
    """:func:`keeps_16_bits` (the editor's rule for a 16-bit export) is true exactly where the file keeps 16 bits."""
    rgb = np.random.default_rng(5).integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    written = load_image(save_image(tmp_path / f"x{ext}", rgb, quality=100))
    assert keeps_16_bits(f"a/b{ext.upper()}") == (written.rgb.dtype == np.uint16)
    assert not keeps_16_bits("a/b.xyz")


# ------------------------------------------------------------------------------------------------- failures


def _fake_png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    chunk2 = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk + chunk2


def test_pixel_limit(tmp_path: Path) -> None:
    p = save_image(tmp_path / "big.png", _noise(100, 100))
    with pytest.raises(ImageLoadError, match="too many pixels"):
        load_image(p, max_pixels=5000)
    assert load_image(p, max_pixels=10_000).rgb.shape == (100, 100, 3)


def test_bomb_header_rejected_before_decoding() -> None:
    data = _fake_png_header(60_000, 60_000)  # 3.6 gigapixels claimed by a 100-byte file
    with pytest.raises(ImageLoadError, match="too many pixels") as ei:
        load_image_bytes(data, "bomb.png")
    assert "bomb.png" in str(ei.value)
    assert f"3600000000 > limit {DEFAULT_MAX_PIXELS}" in str(ei.value), "the message quotes our limit, not Pillow's"
    # just above Pillow's warning threshold: refused by default
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS
    with pytest.raises(ImageLoadError, match="too many pixels"):
        load_image_bytes(_fake_png_header(9460, 9460), "warn.png")
    # with our own limit lifted, Pillow's DecompressionBombError must still become ImageLoadError
    with pytest.raises(ImageLoadError, match="bomb.png"):
        load_image_bytes(data, "bomb.png", max_pixels=10**12)


def test_error_messages_name_file_and_reason(tmp_path: Path) -> None:
    cases = {
        "missing.png": None,
        "empty.png": b"",
        "text.jpg": b"hello, I am not an image\n" * 10,
        "trunc.png": _png_bytes(Image.fromarray(_noise(64, 64)))[:300],
    }
    for name, data in cases.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        with pytest.raises(ImageLoadError) as ei:
            load_image(p)
        msg = str(ei.value)
        assert name in msg and ":" in msg and "\n" not in msg
        assert isinstance(ei.value, FRGDError)
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_unsupported_format_is_image_load_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_noise()).save(buf, "GIF")
    with pytest.raises(ImageLoadError, match="not a supported image"):
        load_image_bytes(buf.getvalue(), "a.gif")


# ------------------------------------------------------------------------------------------------------ saving


def test_alpha_kept_on_png_webp_tiff_and_dropped_on_jpeg(tmp_path: Path) -> None:
    rgb = _noise()
    a = _noise(seed=5)[:, :, 0]
    for ext in ("png", "webp", "tif"):
        p = save_image(tmp_path / f"a.{ext}", rgb, alpha=a, quality=100)
        loaded = load_image(p)
        assert loaded.alpha is not None, ext
        np.testing.assert_array_equal(loaded.alpha, a)
        np.testing.assert_array_equal(loaded.rgb, rgb)
    loaded = load_image(save_image(tmp_path / "a.jpg", rgb, alpha=a))
    assert loaded.alpha is None


def test_the_colour_profile_is_carried_to_every_format_that_holds_one(tmp_path: Path) -> None:
    """Pixels are never colour-converted, so an output of a tagged photo must carry its profile to look the same."""
    icc, rgb = rgb_profile(), _noise()
    for ext in ("png", "jpg", "webp", "tif"):
        loaded = load_image(save_image(tmp_path / f"c.{ext}", rgb, icc_profile=icc, quality=100))
        assert loaded.icc_profile == icc, ext
    deep = load_image(save_image(tmp_path / "deep.png", rgb.astype(np.uint16) * 257, icc_profile=icc))
    assert deep.bit_depth == 16 and deep.icc_profile == icc  # the 16-bit PNG OpenCV writes gets its iCCP chunk
    np.testing.assert_array_equal(deep.rgb, rgb.astype(np.uint16) * 257)
    assert load_image(save_image(tmp_path / "plain.png", rgb)).icc_profile is None
    # a profile of another colour space (a grey or CMYK photo's, whose pixels the loader made RGB) is not written
    for bad in (rgb_profile("LAB"), b"not a profile"):
        assert load_image(save_image(tmp_path / "other.png", rgb, icc_profile=bad, overwrite=True)).icc_profile is None


def test_no_overwrite_by_default(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    save_image(p, _noise(seed=1))
    before = p.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        save_image(p, _noise(seed=2))
    assert p.read_bytes() == before
    save_image(p, _noise(seed=2), overwrite=True)
    np.testing.assert_array_equal(load_rgb(p), _noise(seed=2))


def test_protect_input_even_with_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "photo.jpg"
    save_image(src, _smooth())
    before = src.read_bytes()
    with pytest.raises(InputError, match="input image"):
        save_image(src, _noise(), overwrite=True, protect=[src])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="input image"):
        save_image(Path("sub/../photo.jpg"), _noise(), overwrite=True, protect=[str(src)])
    link = tmp_path / "link.jpg"
    try:
        link.symlink_to(src)
    except OSError:
        pytest.skip("symlinks not supported")
    with pytest.raises(InputError, match="input image"):
        save_image(link, _noise(), overwrite=True, protect=[src])
    assert src.read_bytes() == before


def test_atomic_save_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_image(tmp_path / "ok.png", _noise())
    assert sorted(os.listdir(tmp_path)) == ["ok.png"]

    # a failure while writing must leave neither the target nor a temp file behind
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(FRGDError, match="No space left"):
        save_image(tmp_path / "fail.png", _noise())
    assert sorted(os.listdir(tmp_path)) == ["ok.png"]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown extension"):
        save_image(tmp_path / "x.gifx", _noise())
    with pytest.raises(InputError, match="shape"):
        save_image(tmp_path / "x.png", np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InputError, match="alpha shape"):
        save_image(tmp_path / "x.png", _noise(), alpha=np.zeros((3, 3), np.uint8))
    assert not (tmp_path / "x.png").exists()
    assert os.listdir(tmp_path) == []


def test_too_large_for_the_format_is_one_line_error(tmp_path: Path) -> None:
    """WebP holds at most 16383 px per side: saving wider is a one-line FRGDError, not Pillow's ValueError."""
    wide = np.zeros((4, 16400, 3), np.uint8)
    with pytest.raises(FRGDError, match="cannot save .*WEBP") as ei:
        save_image(tmp_path / "wide.webp", wide)
    assert "\n" not in str(ei.value)
    assert os.listdir(tmp_path) == []


def test_creates_parent_folders(tmp_path: Path) -> None:
    p = save_image(tmp_path / "a" / "b" / "c.png", _noise())
    assert p.is_file()


# -------------------------------------------------------------------------------------------------- provenance


def _prov(identity: bool) -> Provenance:
    return Provenance(
        model="frgd-128",
        seed=1234,
        parameters={"identity_weight": 0.7, "steps": 50},
        reference_hashes={"ref.jpg": "ab" * 32},
        identity_changed=identity,
        source_hash="cd" * 32,
    )


def test_provenance_dict_round_trip() -> None:
    p = _prov(True)
    assert Provenance.from_dict(p.to_dict()) == p
    assert Provenance.from_dict({**p.to_dict(), "future_field": 1}) == p
    assert p.program == "FRGD Studio" and p.created.endswith("+00:00")


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
@pytest.mark.parametrize("identity", [True, False])
def test_provenance_round_trip(tmp_path: Path, ext: str, identity: bool) -> None:
    prov = _prov(identity)
    p = save_image(tmp_path / f"out.{ext}", _smooth(), provenance=prov)
    got = read_provenance(p)
    assert got == prov.to_dict()
    assert Provenance.from_dict(got) == prov


def test_identity_flag_is_human_readable(tmp_path: Path) -> None:
    png = save_image(tmp_path / "o.png", _smooth(), provenance=_prov(True))
    with Image.open(png) as im:
        assert im.info[IDENTITY_FLAG_KEY] == "true"
        assert im.info["Software"].startswith("FRGD Studio")
        assert '"identity_changed": true' in im.info[PROVENANCE_KEY]
    jpg = save_image(tmp_path / "o.jpg", _smooth(), provenance=_prov(True))
    with Image.open(jpg) as im:
        exif = im.getexif()
        assert "IDENTITY CHANGED" in exif[0x010E]
        assert exif[0x0131].startswith("FRGD Studio")
    kept = save_image(tmp_path / "k.png", _smooth(), provenance=_prov(False))
    with Image.open(kept) as im:
        assert im.info[IDENTITY_FLAG_KEY] == "false"


def test_no_provenance(tmp_path: Path) -> None:
    assert read_provenance(save_image(tmp_path / "a.png", _smooth())) is None
    assert read_provenance(save_image(tmp_path / "a.jpg", _smooth())) is None


def test_file_sha256(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = os.urandom(3 << 20)
    p.write_bytes(data)
    assert file_sha256(p) == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_has_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = save_image(tmp_path / "perm.png", _noise())
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644


def test_tensor_conversions_share_io_scaling() -> None:
    """``frgd.tensor`` converts with ``frgd.io.to_float``/``to_uint8``: same scale for every dtype, floats clipped."""
    import torch

    from frgd.io import to_float, to_uint8
    from frgd.tensor import image_to_tensor, tensor_to_image

    for img in (
        _noise(),
        _noise().astype(np.uint16) * 257,
        np.linspace(-0.2, 1.2, 36, dtype=np.float32).reshape(3, 4, 3),
    ):
        t = image_to_tensor(img)
        assert t.dtype == torch.float32 and t.shape == (1, 3, img.shape[0], img.shape[1])
        np.testing.assert_array_equal(t[0].permute(1, 2, 0).numpy(), to_float(img))
        np.testing.assert_array_equal(tensor_to_image(t), to_uint8(img))
