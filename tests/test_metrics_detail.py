"""``frgd.metrics.detail``: fine-detail energy relative to the ground truth, checked against analytic spectra."""

from __future__ import annotations

import numpy as np
import pytest

from frgd.eval.faces import face_metrics
from frgd.metrics import DETAIL_BAND, detail_ratio, detail_score
from frgd.metrics.detail import band_energy

N = 128


def wave(freq: float, amp: float, angle: float = 0.0, phase: float = 0.3) -> np.ndarray:
    """A plane cosine ``(N, N)`` of ``freq`` cycles per pixel around mid-grey (Y as float 0..1)."""
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    arg = 2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase
    return 0.5 + amp * np.cos(arg)


def test_the_ground_truth_against_itself_is_one() -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (N, N, 3), dtype=np.uint8)
    assert detail_ratio(face, face) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("freq", [0.15, 0.25, 0.4])
@pytest.mark.parametrize("amp", [0.02, 0.1, 0.3])
def test_an_in_band_wave_scales_with_its_amplitude_squared(freq: float, amp: float) -> None:
    """The energy is quadratic: the same wave at amplitude ``a`` over amplitude 0.1 is ``(a / 0.1)^2``."""
    assert detail_ratio(wave(freq, amp), wave(freq, 0.1)) == pytest.approx((amp / 0.1) ** 2, rel=1e-9)


def test_below_the_band_counts_almost_nothing() -> None:
    """A strong wave at 1/32 cycle/px (the band starts at 1/8) adds under 0.1 % to an in-band one: the Hann window
    keeps its leakage out; with a rectangular window the border's jump would leak into the band."""
    low = wave(1 / 32, 0.3, angle=0.7) - 0.5
    assert detail_ratio(wave(0.25, 0.05) + low, wave(0.25, 0.05)) == pytest.approx(1.0, abs=1e-3)
    assert band_energy(wave(1 / 32, 0.3, angle=0.7)) < 1e-4 * band_energy(wave(0.25, 0.3))


def test_blur_lowers_it_and_noise_raises_it_in_order() -> None:
    import cv2

    rng = np.random.default_rng(1)
    gt = cv2.GaussianBlur(rng.random((N, N)), (0, 0), 0.7)  # a textured stand-in with a falling spectrum
    ratios = [detail_ratio(cv2.GaussianBlur(gt, (0, 0), s), gt) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(ratios, ratios[1:])) and ratios[-1] < 0.01
    noisy = [detail_ratio(gt + rng.normal(0, s, gt.shape), gt) for s in (0.01, 0.05)]
    assert 1.0 < noisy[0] < noisy[1]


def test_the_score_is_the_geometric_mean_over_faces() -> None:
    gts = [wave(0.25, 0.1), wave(0.3, 0.1)]
    outs = [wave(0.25, 0.2), wave(0.3, 0.05)]  # ratios 4 and 1/4
    assert detail_score(outs, gts) == pytest.approx(1.0, rel=1e-9)
    flat = np.full((N, N), 0.5)  # no energy in the band: no ratio, left out
    assert np.isnan(detail_ratio(wave(0.25, 0.1), flat))
    assert detail_score([*outs, wave(0.25, 0.1)], [*gts, flat]) == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(ValueError):
        detail_ratio(np.zeros((N, N)), np.zeros((N // 2, N // 2)))
    assert DETAIL_BAND == (0.125, 0.5)


def test_face_metrics_reports_detail_next_to_psnr_and_ssim() -> None:
    import cv2

    rng = np.random.default_rng(2)
    gts = [rng.integers(0, 256, (N, N, 3), dtype=np.uint8) for _ in range(2)]
    blurred = [cv2.GaussianBlur(g, (0, 0), 2.0) for g in gts]
    noisy = [np.clip(g + rng.normal(0, 3, g.shape), 0, 255).astype(np.uint8) for g in gts]
    near, soft = face_metrics(noisy, gts), face_metrics(blurred, gts)
    assert set(near) == {"psnr", "ssim", "detail"}
    assert near["detail"] == pytest.approx(1.0, abs=0.02) and soft["detail"] < 0.05
    assert soft["psnr"] < near["psnr"] and soft["ssim"] < near["ssim"]
