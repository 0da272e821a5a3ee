"""frgd.eval.sr_eval and `frgd eval sr`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from frgd.cli.main import main
from frgd.errors import FRGDError, MissingWeightsError
from frgd.eval import sr_eval
from frgd.eval.sr_eval import evaluate_sr, load_set, patch_depth_to_space, sr_metrics
from frgd.metrics import imresize
from tests.conftest import shared_path


def _smooth_rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.stack([gaussian_filter(rng.random((h, w)), 3) for _ in range(3)], -1)
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255).astype(np.uint8)


@pytest.fixture
def tiny_set(tmp_path):
    """A set folder with 2 RGB HR images and 1 grey one; no official LR files (LR made with imresize)."""
    d = tmp_path / "Tiny"
    (d / "HR").mkdir(parents=True)
    Image.fromarray(_smooth_rgb(50, 62, 0)).save(d / "HR" / "a.png")
    Image.fromarray(_smooth_rgb(49, 40, 1)).save(d / "HR" / "b.png")
    Image.fromarray(_smooth_rgb(48, 48, 2)[..., 0]).save(d / "HR" / "grey.png")
    return d


def test_load_set_modcrops_and_makes_lr(tiny_set):
    items = load_set(tiny_set, 3)
    assert [n for n, *_ in items] == ["a", "b", "grey"]
    for _name, hr, lr, src in items:
        assert src == "imresize"
        assert hr.shape[0] % 3 == 0 and hr.shape[1] % 3 == 0
        assert lr.shape[:2] == (hr.shape[0] // 3, hr.shape[1] // 3)
        np.testing.assert_array_equal(lr, imresize(hr, 1 / 3))
    assert items[2][1].ndim == 2


def test_official_lr_is_preferred(tiny_set):
    hr = np.asarray(Image.open(tiny_set / "HR" / "a.png"))[:50, :62]
    (tiny_set / "LR_bicubic" / "X2").mkdir(parents=True)
    fake = np.zeros((25, 31, 3), np.uint8)
    Image.fromarray(fake).save(tiny_set / "LR_bicubic" / "X2" / "ax2.png")
    items = {n: (h, lr, s) for n, h, lr, s in load_set(tiny_set, 2)}
    assert items["a"][2] == "official" and np.all(items["a"][1] == 0)
    assert items["b"][2] == "imresize"
    assert hr.shape == items["a"][0].shape


def test_evaluate_interpolation_models(tiny_set):
    r_rgb = evaluate_sr("bicubic-rgb", tiny_set, 2)
    r_pub = evaluate_sr("bicubic", tiny_set, 2)
    r_lan = evaluate_sr("lanczos", tiny_set, 2)
    for r in (r_rgb, r_pub, r_lan):
        assert len(r.images) == 3
        assert 20 < r.psnr < 80 and 0.5 < r.ssim <= 1.0
        assert r.psnr == pytest.approx(np.mean([im.psnr for im in r.images]))
    assert r_pub.lr_source.startswith("hr-y")
    # a model returning the wrong size is reported, not silently cropped
    with pytest.raises(FRGDError, match="SR output is"):
        evaluate_sr("wrong", tiny_set, 2, sr_fn=lambda lr: lr)


def test_sr_metrics_grey_hr_and_rgb_output():
    g = _smooth_rgb(40, 40, 3)[..., 0]
    rgb = np.repeat(g[..., None], 3, axis=2)
    p, s = sr_metrics(rgb, g, 2)
    assert p == np.inf and s == pytest.approx(1.0)


def test_cli_json(tiny_set, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["eval", "sr", "--model", "bicubic-rgb", "--set", str(tiny_set), "--scale", "4", "--json",
                 "--json-out", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(out.read_text())
    assert data["model"] == "bicubic-rgb" and data["scale"] == 4 and data["set"] == "Tiny"
    assert data["command"].startswith("frgd eval sr --model bicubic-rgb")
    assert len(data["results"][0]["images"]) == 3


def test_cli_errors(tiny_set, tmp_path, capsys):
    assert main(["eval", "sr", "--model", "nope", "--set", str(tiny_set), "--scale", "2"]) == 2
    assert "unknown SR model" in capsys.readouterr().err
    assert main(["eval", "sr", "--model", "bicubic", "--set", str(tmp_path / "missing"), "--scale", "2"]) == 2
    code = main(["eval", "sr", "--model", "opencv-espcn", "--set", str(tiny_set), "--scale", "2",
                 "--ref-weights", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "ESPCN_x2.pb" in err and "--ref-weights" in err


def test_unreadable_image_in_set_is_one_line_error(tiny_set, capsys):
    (tiny_set / "HR" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FRGDError, match="broken.png"):
        load_set(tiny_set, 2)
    assert main(["eval", "sr", "--model", "bicubic", "--set", str(tiny_set), "--scale", "2"]) == 2  # an input error
    err = capsys.readouterr().err
    assert "cannot load image" in err and "broken.png" in err and "internal error" not in err


def test_missing_reference_weights_message(tmp_path):
    with pytest.raises(MissingWeightsError, match="LapSRN_x3.pb"):
        sr_eval.get_sr_model("opencv-lapsrn", 3, tmp_path)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        c, n = n & 0x7F, n >> 7
        out.append(c | 0x80 if n else c)
        if not n:
            return bytes(out)


def _ld(f: int, b: bytes) -> bytes:
    return _varint((f << 3) | 2) + _varint(len(b)) + b


def test_patch_depth_to_space_adds_blocksize():
    attr = _ld(1, b"block_size") + _ld(2, _varint(3 << 3) + _varint(3))
    node = _ld(1, b"d2s") + _ld(2, b"DepthToSpace") + _ld(3, b"x") + _ld(5, attr)
    other = _ld(1, b"conv") + _ld(2, b"Conv2D")
    graph = _ld(1, other) + _ld(1, node)
    patched = patch_depth_to_space(graph)
    assert patched.startswith(_ld(1, other))
    nodes = [v for f, _w, v, _r in sr_eval._pb_fields(patched) if f == 1]
    attrs = [sr_eval._pb_fields(v) for f, _w, v, _r in sr_eval._pb_fields(nodes[1]) if f == 5]
    keys = {bytes(a[0][2]): a[1][2] for a in attrs}
    assert set(keys) == {b"block_size", b"blocksize"}
    assert sr_eval._pb_fields(keys[b"blocksize"])[0][:3] == (3, 0, 3)
    assert patch_depth_to_space(patched) == patched  # idempotent


PUBLISHED_BICUBIC = [  # (set, scale, PSNR, SSIM): SRCNN/VDSR/EDSR papers' bicubic rows
    ("Set5", 2, 33.66, 0.9299),
    ("Set5", 3, 30.39, 0.8682),
    ("Set5", 4, 28.42, 0.8104),
    ("Set14", 2, 30.24, 0.8688),
]


@pytest.mark.shared
@pytest.mark.parametrize("set_name,scale,p_ref,s_ref", PUBLISHED_BICUBIC)
def test_bicubic_reproduces_published_table(set_name, scale, p_ref, s_ref):
    r = evaluate_sr("bicubic", shared_path("data", "sr", "bench", set_name), scale)
    assert abs(r.psnr - p_ref) <= 0.01, r.psnr
    assert abs(r.ssim - s_ref) <= 0.001, r.ssim


@pytest.mark.shared
@pytest.mark.slow
def test_bicubic_reproduces_published_b100():
    r = evaluate_sr("bicubic", shared_path("data", "sr", "bench", "B100"), 2)
    assert len(r.images) == 100
    assert abs(r.psnr - 29.56) <= 0.01 and abs(r.ssim - 0.8431) <= 0.001


@pytest.mark.shared
def test_opencv_espcn_x2_beats_bicubic_on_set5():
    set5 = shared_path("data", "sr", "bench", "Set5")
    ref = shared_path("weights", "sr_reference")
    espcn = evaluate_sr("opencv-espcn", set5, 2, ref_weights=ref)
    bic = evaluate_sr("bicubic-rgb", set5, 2)
    assert espcn.lr_source == "official"
    assert espcn.psnr > bic.psnr + 0.5, (espcn.psnr, bic.psnr)


def test_registering_the_command_does_not_import_torch():
    """``frgd --help`` builds every parser: ``frgd eval sr`` and the numpy metrics must not pull in torch."""
    import subprocess
    import sys

    code = (
        "import argparse, sys\n"
        "from frgd.cli import cmd_eval_sr, main\n"
        "root = argparse.ArgumentParser().add_subparsers()\n"
        "groups = {g: root.add_parser(g).add_subparsers() for g in main.GROUPS}\n"
        "cmd_eval_sr.register(root, groups)\n"
        "import frgd.metrics\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
