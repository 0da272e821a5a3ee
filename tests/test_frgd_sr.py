"""FRGD-SR: architecture, training script, shipped weights (ours) beating bicubic."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from frgd.archs.edsr_arch import EDSRLite
from frgd.errors import InputError, MissingWeightsError
from frgd.eval.sr_eval import evaluate_sr
from frgd.metrics import imresize, psnr_y
from frgd.sr import train_sr
from frgd.sr.ours import build_frgd_sr, load_frgd_sr, save_frgd_sr, weights_name
from frgd.tensor import image_to_tensor, tensor_to_image
from tests.conftest import shared_path

logger = logging.getLogger(__name__)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_arch_shapes_and_bicubic_start(scale):
    torch.manual_seed(0)
    m = EDSRLite(scale, num_feat=8, num_block=2).eval()
    x = torch.rand(2, 3, 9, 11)
    y = m(x)
    assert y.shape == (2, 3, 9 * scale, 11 * scale)
    # the tail starts at zero: an untrained network is exactly bicubic (global residual)
    ref = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    torch.testing.assert_close(y, ref)
    keys = set(m.state_dict())
    assert {"head.weight", "body.0.conv1.weight", "body.1.conv2.bias", "body_conv.weight", "tail.weight"} <= keys
    assert "mean" not in keys
    assert m.tail.out_channels == 3 * scale * scale


def test_arch_rejects_bad_scale():
    with pytest.raises(ValueError):
        EDSRLite(5)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    m = EDSRLite(3, num_feat=8, num_block=1)
    torch.nn.init.normal_(m.tail.weight, std=0.01)
    save_frgd_sr(m, tmp_path / "w", extra={"train_steps": 7})
    cfg = (tmp_path / "w" / "config.json").read_text()
    assert '"arch": "EDSRLite"' in cfg and '"train_steps": 7' in cfg
    m2 = load_frgd_sr(3, directory=tmp_path / "w")
    x = torch.rand(1, 3, 8, 8)
    assert all(p.dtype == torch.float32 for p in m2.parameters())  # stored as float16, computed in float32
    torch.testing.assert_close(m2(x), m.half().float().eval()(x))
    assert not any(p.requires_grad for p in m2.parameters())
    with pytest.raises(InputError):
        load_frgd_sr(2, directory=tmp_path / "w")
    with pytest.raises(InputError):
        build_frgd_sr({"arch": "Other"})
    with pytest.raises(InputError):
        weights_name(5)


def _write_images(folder, n, size, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.stack([gaussian_filter(rng.random(size), 2) for _ in range(3)], -1)
        img = (img - img.min()) / (img.max() - img.min())
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_train_resume_and_export(tmp_path):
    data = tmp_path / "train"
    _write_images(data, 3, (40, 44), 0)
    _write_images(tmp_path / "val" / "HR", 1, (32, 32), 1)
    run = tmp_path / "run"
    common = ["train", "--scale", "2", "--run", str(run), "--train-dir", str(data), "--val-dir", str(tmp_path / "val"),
              "--num-feat", "8", "--num-block", "1", "--batch", "2", "--lr-patch", "8", "--log-every", "1",
              "--val-every", "2"]  # fmt: skip
    assert train_sr.main([*common, "--steps", "3"]) == 0
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["step"] == 3 and ck["config"]["num_feat"] == 8
    assert train_sr.main([*common, "--steps", "5"]) == 0  # resumes at step 3
    ck2 = torch.load(run / "last.pt", weights_only=True)
    assert ck2["step"] == 5
    assert not torch.equal(ck["model"]["tail.weight"], ck2["model"]["tail.weight"])
    assert "resumed" in (run / "train.log").read_text()
    # initialise an x3 run from the x2 checkpoint: all but the tail transfer
    run3 = tmp_path / "run3"
    args3 = [a if a != str(run) else str(run3) for a in common]
    args3[args3.index("--scale") + 1] = "3"
    assert train_sr.main([*args3, "--steps", "1", "--init", str(run / "last.pt")]) == 0
    assert "skipped: ['tail.bias', 'tail.weight']" in (run3 / "train.log").read_text()
    out = tmp_path / "export"
    assert train_sr.main(["export", "--run", str(run), "--out", str(out)]) == 0
    m = load_frgd_sr(2, directory=out)
    torch.testing.assert_close(m.tail.weight, ck2["model"]["tail.weight"])


def _shipped(scale):
    try:
        return load_frgd_sr(scale)
    except MissingWeightsError as err:
        pytest.fail(f"shipped FRGD-SR weights missing: {err}")


def _texture(h, w, seed):
    """A synthetic image with edges and texture (the kind of content SR should sharpen)."""
    rng = np.random.default_rng(seed)
    base = np.stack([gaussian_filter(rng.random((h, w)), 1.2) for _ in range(3)], -1)
    yy, xx = np.mgrid[:h, :w]
    stripes = (np.sin(xx * 0.35 + yy * 0.1) > 0).astype(float)
    disc = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (h / 4) ** 2).astype(float)
    img = 0.4 * base / base.max() + 0.35 * gaussian_filter(stripes, 0.8)[..., None] + 0.25 * disc[..., None]
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_beat_bicubic_on_synthetic_image(scale):
    model = _shipped(scale)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    hr = _texture(96, 96, scale)
    lr = imresize(hr, 1 / scale)
    with torch.no_grad():
        sr = tensor_to_image(model(image_to_tensor(lr)))
    ours, bic = psnr_y(sr, hr, scale), psnr_y(imresize(lr, scale), hr, scale)
    logger.info("synthetic x%d: frgd-sr %.2f dB, bicubic %.2f dB, margin %.2f dB", scale, ours, bic, ours - bic)
    assert ours > bic, (ours, bic)


@pytest.mark.shared
@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_weights_beat_bicubic_on_set5(scale):
    _shipped(scale)
    set5 = shared_path("data", "sr", "bench", "Set5")
    ours = evaluate_sr("frgd-sr", set5, scale)
    bic = evaluate_sr("bicubic-rgb", set5, scale)
    logger.info("Set5 x%d: frgd-sr %.3f dB, bicubic %.3f dB", scale, ours.psnr, bic.psnr)
    assert ours.psnr > bic.psnr and ours.ssim > bic.ssim
    assert all(o.psnr > b.psnr for o, b in zip(ours.images, bic.images))
