"""Tests of frgd.degrade: determinism, purity, scale bounds, shapes/ranges and the measurable effect of each op."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from frgd.degrade import (
    MAX_SCALE,
    DegradationConfig,
    Degraded,
    DegradedBatch,
    apply_degradation,
    degrade_batch,
    degrade_image,
    fixed_degradation,
    gaussian_kernel,
    sample_params,
)
from frgd.errors import InputError

ONLY = {"blur_prob": 0.0, "noise_prob": 0.0, "jpeg_prob": 0.0, "extreme_prob": 0.0}


def _img(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Textured float32 image in [0, 1]: smooth gradients plus fine detail."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 3.0 + y / 5.0)], axis=-1)
    return np.clip(0.7 * base + 0.3 * rng.random((h, w, 3), dtype=np.float32), 0, 1).astype(np.float32)


def _hf_energy(img: np.ndarray) -> float:
    """Mean squared Laplacian: high-frequency energy."""
    lap = 4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
    return float((lap**2).mean())


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_output_and_params() -> None:
    img = _img()
    cfg = DegradationConfig(shuffle_order=True)
    a = degrade_image(img, np.random.default_rng(7), cfg)
    b = degrade_image(img, np.random.default_rng(7), cfg)
    assert isinstance(a, Degraded)
    np.testing.assert_array_equal(a.lq, b.lq)
    assert a.params == b.params


def test_different_seeds_differ() -> None:
    img = _img()
    outs = [degrade_image(img, np.random.default_rng(s)) for s in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert outs[i].params != outs[j].params
            assert not np.array_equal(outs[i].lq, outs[j].lq)


def test_batch_determinism_and_consistency_with_numpy() -> None:
    x = torch.from_numpy(np.stack([_img(seed=s) for s in range(3)]).transpose(0, 3, 1, 2).copy())
    seeds = [11, 12, 13]
    a = degrade_batch(x, seeds)
    b = degrade_batch(x, seeds)
    assert isinstance(a, DegradedBatch)
    assert torch.equal(a.lq, b.lq)
    assert a.params == b.params
    for i, s in enumerate(seeds):
        single = degrade_image(_img(seed=i), np.random.default_rng(s))
        np.testing.assert_allclose(a.lq[i].permute(1, 2, 0).numpy(), single.lq, atol=1e-6)
        assert a.params[i]["seed"] == s
        assert float(a.scales[i]) == pytest.approx(single.params["scale"])
    c = degrade_batch(x, [11, 12, 14])
    assert torch.equal(c.lq[:2], a.lq[:2]) and not torch.equal(c.lq[2], a.lq[2])


def test_batch_with_torch_generator() -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = degrade_batch(x, torch.Generator().manual_seed(5))
    b = degrade_batch(x, torch.Generator().manual_seed(5))
    c = degrade_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a.lq, b.lq)
    assert not torch.equal(a.lq, c.lq)
    assert len({p["seed"] for p in a.params}) == 4


def test_params_replay_exactly_and_are_json() -> None:
    img = _img()
    cfg = DegradationConfig(shuffle_order=True, blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0)
    d = degrade_image(img, np.random.default_rng(3), cfg)
    params = json.loads(json.dumps(d.params))
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    replay = apply_degradation(x, params)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(replay, d.lq)


# ---------------------------------------------------------------------------------------------------- purity


def test_inputs_unchanged() -> None:
    img = _img()
    before = img.copy()
    degrade_image(img, np.random.default_rng(0), DegradationConfig(blur_prob=1, noise_prob=1, jpeg_prob=1))
    np.testing.assert_array_equal(img, before)
    x = torch.from_numpy(np.stack([img, img]).transpose(0, 3, 1, 2).copy())
    xb = x.clone()
    degrade_batch(x, [1, 2], DegradationConfig(blur_prob=1, noise_prob=1, jpeg_prob=1))
    assert torch.equal(x, xb)


# -------------------------------------------------------------------------------------- scales, shapes, ranges


def test_scale_bounds_and_sizes() -> None:
    cfg = DegradationConfig(scale_range=(2.0, 16.0), extreme_prob=0.0, resize_back=False)
    rng = np.random.default_rng(0)
    scales = []
    for _ in range(300):
        p = sample_params(rng, cfg, (128, 96))
        assert 2.0 <= p["scale"] <= 16.0
        assert p["lr_size"] == [max(1, round(128 / p["scale"])), max(1, round(96 / p["scale"]))]
        scales.append(p["scale"])
    assert min(scales) < 3.0 and max(scales) > 12.0  # the range is actually covered
    for bad in [(0.5, 2.0), (2.0, MAX_SCALE + 1), (4.0, 2.0)]:
        with pytest.raises(InputError):
            DegradationConfig(scale_range=bad)
        with pytest.raises(InputError):
            DegradationConfig(extreme_scale_range=bad)
    with pytest.raises(InputError):
        DegradationConfig(extreme_prob=1.5)


def test_extreme_inputs_share_and_sizes() -> None:
    """A share ``extreme_prob`` of the draws comes from ``extreme_scale_range`` (2-5 px faces), the rest from
    ``scale_range``; every op still runs on a 2 px image; without extreme inputs no extra number is drawn."""
    cfg = DegradationConfig(extreme_prob=0.25, shuffle_order=True, blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0)
    rng = np.random.default_rng(1)
    scales = np.array([sample_params(rng, cfg, (128, 128))["scale"] for _ in range(2000)])
    extreme = scales >= cfg.extreme_scale_range[0]
    assert np.all((scales <= 16.0) | extreme) and np.all(scales <= 64.0)
    assert abs(extreme.mean() - 0.25) < 0.04  # 2000 seeded draws: the share, SE 0.01
    img = _img(128, 128)
    for seed in range(12):  # blur before/after the downscale, noise, JPEG, on the smallest images
        d = degrade_image(img, np.random.default_rng(seed), replace(cfg, extreme_prob=1.0, resize_back=False))
        assert 2 <= d.lq.shape[0] <= 5 and d.lq.shape[0] == d.params["lr_size"][0]
        assert np.isfinite(d.lq).all() and 0.0 <= d.lq.min() and d.lq.max() <= 1.0
    # extreme_prob = 0 draws nothing for them (a config from before they existed draws the same numbers), while any
    # positive share draws its two numbers first, whether or not the sample is extreme
    pa = sample_params(np.random.default_rng(5), DegradationConfig(extreme_prob=0.0), (128, 128))
    pb = sample_params(
        np.random.default_rng(5), DegradationConfig(extreme_prob=0.0, extreme_scale_range=(30, 31)), (128, 128)
    )
    pc = sample_params(np.random.default_rng(5), DegradationConfig(extreme_prob=1e-12), (128, 128))
    assert pa == pb and pc["scale"] <= 16.0 and pc["scale"] != pa["scale"]
    with pytest.raises(InputError):
        DegradationConfig(kernels=("nearest-ish",))
    with pytest.raises(InputError):
        DegradationConfig(jpeg_quality=(0, 50))
    # noise ranges are checked up front (a zero photon peak used to crash sampling with "math domain error")
    for kw in ({"poisson_peak": (0.0, 100.0)}, {"poisson_peak": (50.0, 20.0)}, {"noise_sigma": (-0.1, 0.1)}):
        with pytest.raises(InputError):
            DegradationConfig(**kw)


def test_scale_one_is_identity_without_ops() -> None:
    img = _img()
    d = degrade_image(img, np.random.default_rng(0), DegradationConfig(scale_range=(1.0, 1.0), **ONLY))
    np.testing.assert_allclose(d.lq, img, atol=1e-6)


def test_scale_choices() -> None:
    cfg = DegradationConfig(scale_choices=(2, 4, 8), resize_back=False, **ONLY)
    seen = {degrade_image(_img(), np.random.default_rng(s), cfg).params["scale"] for s in range(30)}
    assert seen == {2.0, 4.0, 8.0}


@pytest.mark.parametrize("resize_back", [True, False])
def test_shapes_dtypes_ranges(resize_back: bool) -> None:
    img = _img(48, 40)
    cfg = DegradationConfig(resize_back=resize_back, blur_prob=1, noise_prob=1, jpeg_prob=1)
    for s in range(5):
        d = degrade_image(img, np.random.default_rng(s), cfg)
        assert d.lq.dtype == np.float32 and d.lq.ndim == 3 and d.lq.shape[2] == 3
        assert d.lq.min() >= 0.0 and d.lq.max() <= 1.0
        expected = (48, 40) if resize_back else tuple(d.params["lr_size"])
        assert d.lq.shape[:2] == expected
    x = torch.rand(3, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    b = degrade_batch(x, [0, 1, 2], cfg)
    assert b.scales.shape == (3,) and b.scales.dtype == torch.float32
    if resize_back:
        assert isinstance(b.lq, torch.Tensor) and b.lq.shape == x.shape and b.lq.dtype == torch.float32
        assert float(b.lq.min()) >= 0.0 and float(b.lq.max()) <= 1.0
    else:
        assert isinstance(b.lq, list)
        for t, p in zip(b.lq, b.params):
            assert tuple(t.shape) == (3, *p["lr_size"])


def test_uint8_input_accepted() -> None:
    img = (_img() * 255).round().astype(np.uint8)
    d = degrade_image(img, np.random.default_rng(0), fixed_degradation(2))
    assert d.lq.dtype == np.float32 and d.lq.shape == (32, 32, 3)


def test_bad_shapes() -> None:
    with pytest.raises(InputError):
        degrade_image(np.zeros((8, 8), np.float32), np.random.default_rng(0))
    with pytest.raises(InputError):
        degrade_batch(torch.zeros(2, 3, 8, 8), [1])


# ------------------------------------------------------------------------------------------------ op effects


def test_blur_lowers_high_frequency_energy() -> None:
    img = _img()
    cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "blur_prob": 1.0}, aniso_prob=0.0, blur_sigma=(1.5, 1.5))
    d = degrade_image(img, np.random.default_rng(0), cfg)
    assert d.params["blur"]["type"] == "iso"
    assert _hf_energy(d.lq) < 0.2 * _hf_energy(img)


def test_gaussian_kernel_properties() -> None:
    k = gaussian_kernel(15, 2.0)
    assert k.shape == (15, 15) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k.T, atol=1e-12)
    a = gaussian_kernel(15, 3.0, 0.7, theta=0.0)  # wide along x
    b = gaussian_kernel(15, 3.0, 0.7, theta=np.pi / 2)  # rotated: wide along y
    np.testing.assert_allclose(a, b.T, atol=1e-12)
    r = np.arange(15) - 7
    var_x = float((a.sum(0) * r**2).sum())
    var_y = float((a.sum(1) * r**2).sum())
    assert var_x > 4 * var_y


def test_anisotropic_blur_is_directional() -> None:
    img = _img()
    cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "blur_prob": 1.0}, aniso_prob=1.0)
    params = sample_params(np.random.default_rng(0), cfg, img.shape[:2])
    params["blur"] = {"type": "aniso", "sigma_x": 3.0, "sigma_y": 0.3, "theta": 0.0, "size": 21}
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    out = apply_degradation(x, params)[0].permute(1, 2, 0).numpy()
    dx = lambda a: float((np.diff(a, axis=1) ** 2).mean())  # noqa: E731
    dy = lambda a: float((np.diff(a, axis=0) ** 2).mean())  # noqa: E731
    assert dx(out) / dx(img) < 0.5 * (dy(out) / dy(img))


def test_gaussian_noise_strength() -> None:
    img = np.full((96, 96, 3), 0.5, np.float32)
    sigma = 10 / 255
    cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "noise_prob": 1.0}, poisson_prob=0.0,
                            gray_noise_prob=0.0, noise_sigma=(sigma, sigma))  # fmt: skip
    d = degrade_image(img, np.random.default_rng(0), cfg)
    assert d.params["noise"]["type"] == "gaussian"
    assert float((d.lq - img).std()) == pytest.approx(sigma, rel=0.05)
    assert abs(float((d.lq - img).mean())) < 0.003


def test_poisson_noise_variance() -> None:
    img = np.full((96, 96, 3), 0.4, np.float32)
    peak = 100.0
    cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "noise_prob": 1.0}, poisson_prob=1.0,
                            gray_noise_prob=0.0, poisson_peak=(peak, peak))  # fmt: skip
    d = degrade_image(img, np.random.default_rng(0), cfg)
    assert d.params["noise"]["type"] == "poisson"
    # Poisson: var(k / peak) = x / peak
    assert float((d.lq - img).var()) == pytest.approx(0.4 / peak, rel=0.1)


def test_gray_noise_is_the_same_in_every_channel() -> None:
    img = np.full((32, 32, 3), 0.5, np.float32)
    cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "noise_prob": 1.0}, poisson_prob=0.0,
                            gray_noise_prob=1.0)  # fmt: skip
    d = degrade_image(img, np.random.default_rng(0), cfg)
    n = d.lq - img
    np.testing.assert_allclose(n[:, :, 0], n[:, :, 1], atol=1e-6)
    assert float(n.std()) > 0


def test_jpeg_quality_10_hurts_more_than_95() -> None:
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    img = np.stack([x / 64, y / 64, 0.5 + 0.3 * np.sin(x / 3 + y / 5)], -1).astype(np.float32)
    img = np.clip(img + 0.05 * np.random.default_rng(0).random(img.shape, dtype=np.float32), 0, 1)

    def err(q: int) -> float:
        cfg = DegradationConfig(scale_range=(1.0, 1.0), **{**ONLY, "jpeg_prob": 1.0}, jpeg_quality=(q, q))
        d = degrade_image(img, np.random.default_rng(0), cfg)
        assert d.params["jpeg"] == {"quality": q}
        return float(np.abs(d.lq - img).mean())

    e10, e50, e95 = err(10), err(50), err(95)
    assert e10 > e50 > e95 > 0
    assert e10 > 2 * e95  # measured 0.043 vs 0.013 (mean abs error)


def test_downscale_kernels() -> None:
    flat = np.full((64, 64, 3), 0.3, np.float32)
    img = _img()
    outs = {}
    for k in ("bicubic", "bilinear", "area", "matlab"):
        cfg = fixed_degradation(4, k)
        np.testing.assert_allclose(degrade_image(flat, np.random.default_rng(0), cfg).lq, 0.3, atol=1e-5)
        outs[k] = degrade_image(img, np.random.default_rng(0), cfg).lq
        assert outs[k].shape == (16, 16, 3)
    assert not np.allclose(outs["bicubic"], outs["area"], atol=1e-4)
    # area: exact 4x4 box means
    box = img.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(outs["area"], box, atol=1e-6)
    # more downscaling loses more detail after resizing back
    hf = []
    for s in (2, 4, 8):
        cfg = DegradationConfig(scale_range=(s, s), kernels=("bicubic",), resize_back=True, **ONLY)
        hf.append(_hf_energy(degrade_image(img, np.random.default_rng(0), cfg).lq))
    assert hf[0] > hf[1] > hf[2]


def test_matlab_kernel_matches_imresize() -> None:
    from frgd.metrics.imresize import imresize

    img = _img()
    d = degrade_image(img, np.random.default_rng(0), fixed_degradation(4, "matlab"))
    ref = np.clip(imresize(img.astype(np.float64), output_shape=(16, 16)), 0, 1)
    np.testing.assert_allclose(d.lq, ref, atol=1e-5)


def test_shuffle_order_keeps_jpeg_last() -> None:
    cfg = DegradationConfig(shuffle_order=True)
    orders = set()
    for s in range(40):
        p = sample_params(np.random.default_rng(s), cfg, (64, 64))
        assert p["order"][-1] == "jpeg" and sorted(p["order"][:-1]) == ["blur", "downscale", "noise"]
        orders.add(tuple(p["order"]))
    assert len(orders) >= 4
    fixed = sample_params(np.random.default_rng(0), DegradationConfig(), (64, 64))
    assert fixed["order"] == ["blur", "downscale", "noise", "jpeg"]


def test_fixed_degradation_presets() -> None:
    img = _img()
    clean = degrade_image(img, np.random.default_rng(0), fixed_degradation(8))
    assert clean.lq.shape == (8, 8, 3)
    assert clean.params["blur"] is None and clean.params["noise"] is None and clean.params["jpeg"] is None
    assert clean.params["preset"] == "fixed-clean-x8-bicubic"
    mild = fixed_degradation(4, preset="mild")
    a = degrade_image(img, np.random.default_rng(0), mild)
    b = degrade_image(img, np.random.default_rng(0), mild)
    np.testing.assert_array_equal(a.lq, b.lq)
    assert a.params["blur"]["sigma"] == 1.0 and a.params["jpeg"] == {"quality": 75}
    assert a.params["noise"]["sigma"] == pytest.approx(5 / 255)
    assert "mild" in a.params["preset"]
    with pytest.raises(InputError):
        fixed_degradation(4, preset="nope")


@pytest.mark.gpu
def test_batch_on_cuda_matches_shapes() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.rand(2, 3, 64, 64, device="cuda")
    b = degrade_batch(x, [1, 2], DegradationConfig(blur_prob=1, noise_prob=1, jpeg_prob=1))
    assert b.lq.device.type == "cuda" and b.lq.shape == x.shape
    c = degrade_batch(x, [1, 2], DegradationConfig(blur_prob=1, noise_prob=1, jpeg_prob=1))
    assert torch.equal(b.lq, c.lq)
