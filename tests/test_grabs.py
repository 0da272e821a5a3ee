"""Docs grabs (:mod:`frgd_studio.tools.grabs`): lossless WebP holds exactly the grabbed pixels; past a byte limit the
grab is reduced to a palette until it fits."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("PySide6")


def _picture() -> np.ndarray:
    """(160, 240, 3) uint8: gradients with noise (about 70 kB as lossless WebP, many thousand colours)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:160, 0:240]
    img = np.stack([x, 1.5 * y, (x + y) / 2], -1) + rng.normal(0, 6, (160, 240, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _colours(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0))


def _pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "WEBP"
        return np.asarray(im.convert("RGB"))


def test_a_grab_is_written_pixel_exact(qapp, tmp_path):
    from frgd_studio.qtimage import to_pixmap, to_qimage
    from frgd_studio.tools.grabs import save_grab

    img = _picture()
    for grab in (to_qimage(img), to_pixmap(img)):
        path = tmp_path / "shot.webp"
        size = save_grab(grab, path)
        assert size == path.stat().st_size
        np.testing.assert_array_equal(_pixels(path), img)
    assert _colours(path) > 5000


def test_over_its_limit_a_grab_is_reduced_to_a_palette(qapp, tmp_path, caplog):
    from frgd_studio.qtimage import to_qimage
    from frgd_studio.tools.grabs import save_grab

    grab = to_qimage(_picture())
    full = save_grab(grab, tmp_path / "full.webp")
    path = tmp_path / "shot.webp"
    size = save_grab(grab, path, limit=full // 2)
    assert size == path.stat().st_size <= full // 2
    assert _colours(path) <= 256
    err = np.abs(_pixels(path).astype(int) - _picture().astype(int))
    assert err.mean() < 12, "the palette keeps the picture"
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="frgd_studio.tools.grabs"):
        size = save_grab(grab, path, limit=1000)  # no rung fits: the last one is kept, with a warning
    assert size > 1000 and _colours(path) <= 32
    assert "over the 1000-byte limit" in caplog.text


def test_a_grab_is_only_written_as_webp(qapp, tmp_path):
    from frgd_studio.qtimage import to_qimage
    from frgd_studio.tools.grabs import save_grab

    with pytest.raises(ValueError, match=r"written as \.webp"):
        save_grab(to_qimage(_picture()), tmp_path / "shot.png")
    assert not (tmp_path / "shot.png").exists()
