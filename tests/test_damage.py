"""Damage repair: the harmonic fill (oracles), and "marked pixels carry no information" through the sampler, the
restorers, the photo pipeline and the CLI (tiny random models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_frgd_pipeline import _one_thread  # noqa: F401 - autouse fixture: one torch thread for tiny models
from test_frgd_prior import ConstantPrior, _with_prior, tiny_pipe  # noqa: F401 - fixture
from test_restore import tiny_gfpgan  # noqa: F401 - fixture

from frgd.cli.main import main
from frgd.diffusion.damage import DAMAGE_COVER, damage_at, damage_target, fill_damage, repair_image
from frgd.errors import InputError
from frgd.io import load_rgb, read_provenance, save_image

S = 32


def _ramp(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.stack([0.2 + 0.01 * xx + 0.005 * yy, 0.7 - 0.004 * xx, 0.3 + 0.008 * yy])[None]


# ----------------------------------------------------------------------------------------------- the fill
def test_fill_is_harmonic_a_plane_is_filled_exactly():
    """A plane is harmonic: the fill of an interior hole converges to it (the discrete Laplace equation's solution),
    and the known pixels are never changed, at any number of sweeps."""
    img = _ramp(37, 50)
    hole = torch.zeros(1, 1, 37, 50)
    hole[..., 10:25, 5:30] = 1
    hole[..., 30, 35:45] = 1  # a one-pixel scratch
    for sweeps, tol in ((1000, 1e-5), (40, 3e-3)):
        out = fill_damage(img, hole, sweeps=sweeps)
        assert float((out - img).abs().max()) < tol
        assert torch.equal(out[hole.expand_as(img) == 0], img[hole.expand_as(img) == 0])
    assert float((fill_damage(img, hole, sweeps=2) - img).abs().max()) > 1e-3  # so the convergence check can fail


def test_fill_keeps_the_maximum_principle_and_edge_cases():
    """A harmonic fill lies within the range of the pixels it is filled from; nothing damaged returns the image, all
    damaged returns mid grey; each image of a batch is filled from its own pixels only."""
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 24, 24, generator=g)
    hole = (torch.rand(2, 1, 24, 24, generator=g) > 0.7).float()
    out = fill_damage(img, hole)
    for b in range(2):
        known = img[b][:, hole[b, 0] == 0]
        filled = out[b][:, hole[b, 0] == 1]
        assert float(filled.min()) >= float(known.min()) - 1e-6 and float(filled.max()) <= float(known.max()) + 1e-6
        torch.testing.assert_close(fill_damage(img[b : b + 1], hole[b : b + 1]), out[b : b + 1])
    assert fill_damage(img, torch.zeros(1, 1, 24, 24)) is img
    torch.testing.assert_close(fill_damage(img, torch.ones(1, 1, 24, 24)), torch.full_like(img, 0.5))


def test_damage_at_marks_every_pixel_a_scratch_crosses():
    """A one-pixel scratch at 128 px marks every 16 px input pixel it crosses (:data:`DAMAGE_COVER`) and no other;
    upscaling is nearest, a same-size mask is thresholded at one half."""
    d = torch.zeros(1, 1, 128, 128)
    d[..., 64, :] = 1  # row 64 lies in input row 8 (rows 64..71)
    small = damage_at(d, (16, 16))
    assert small[0, 0, 8].min() == 1 and small.sum() == 16
    assert 1 / 8 >= DAMAGE_COVER  # one row of eight covers more than the rule asks
    assert damage_at(torch.zeros(1, 1, 128, 128), (16, 16)).sum() == 0
    big = damage_at(small, (128, 128))
    assert big[0, 0, 64:72].min() == 1 and big.sum() == 8 * 128
    assert torch.equal(damage_at(torch.full((1, 1, 8, 8), 0.6), (8, 8)), torch.ones(1, 1, 8, 8))


def test_damage_target_takes_the_prior_only_where_damaged():
    t, p = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    d = torch.zeros(1, 1, 4, 4)
    d[..., 1, 2] = 1
    out = damage_target(t, p, d)
    assert float(out.sum()) == 3 and torch.equal(out[0, :, 1, 2], torch.ones(3))
    assert damage_target(t, None, d) is t


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_repair_image_changes_only_the_damage_and_keeps_the_dtype(dtype):
    rng = np.random.default_rng(0)
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    img = (rng.random((60, 80, 3)) * top).astype(dtype)
    d = np.zeros((60, 80), np.float32)
    d[30, 10:50] = 1
    out = repair_image(img, d)
    assert out.dtype == img.dtype and out.shape == img.shape
    changed = (out != img).any(axis=2)
    assert changed[30, 10:50].all() and changed.sum() == 40
    assert repair_image(img, np.zeros((60, 80))) is img
    with pytest.raises(ValueError, match="size"):
        repair_image(img, np.zeros((10, 10)))


def test_repair_in_windows_equals_one_window(monkeypatch):
    """A large image is filled in windows (cores of :data:`REPAIR_TILE` with :data:`REPAIR_MARGIN` around them):
    within a level of filling it as one window, for a one-pixel scratch and a stain near the margin's width that
    cross the cores' borders. Progress counts the windows; a cancel stops it at the next batch."""
    import cv2

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur((rng.random((300, 420, 3)) * 255).astype(np.uint8), (0, 0), 6)
    d = np.zeros((300, 420), np.uint8)
    cv2.line(d, (0, 10), (419, 290), 255, 1)
    cv2.circle(d, (128, 128), 25, 255, -1)  # on a core corner
    whole = repair_image(img, d, tile=10_000)
    tiled = repair_image(img, d)
    assert tiled.shape == whole.shape and np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    np.testing.assert_array_equal(tiled[d == 0], img[d == 0])

    # progress counts the windows; a cancel stops it at the next batch, before the image is finished
    from frgd.diffusion import damage as damage_mod
    from frgd.jobs import Cancelled, CancelToken

    reports = []
    np.testing.assert_array_equal(repair_image(img, d, progress=lambda *r: reports.append(r[:2])), tiled)
    n = reports[-1][1]
    assert n > 1 and reports[0] == (0, n) and reports[-1] == (n, n)
    assert [r[0] for r in reports] == sorted(r[0] for r in reports)
    token, seen = CancelToken(), []

    def press_esc(done, total, _message=""):
        seen.append(done)
        if done > 0:
            token.cancel()

    monkeypatch.setattr(damage_mod, "REPAIR_BATCH", 1)
    with pytest.raises(Cancelled):
        repair_image(img, d, progress=press_esc, cancel=token)
    assert seen == [0, 1], "stopped at the batch after the cancel"


# ------------------------------------------------------------------------------------------------ the sampler
def _scratched(base: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``base`` ``(1,3,8,8)`` with two rows overwritten by random values, and the damage ``(1,1,S,S)`` over them."""
    x = base.clone()
    x[..., 2, :] = torch.rand(1, 3, 8, generator=torch.Generator().manual_seed(seed))
    x[..., 5, 1:6] = torch.rand(1, 3, 5, generator=torch.Generator().manual_seed(seed + 1))
    d = torch.zeros(1, 1, 8, 8)
    d[..., 2, :] = 1
    d[..., 5, 1:6] = 1
    return x, damage_at(d, (S, S))


def test_marked_pixels_carry_no_information(tiny_pipe):  # noqa: F811
    """Two inputs that differ only where the damage is marked give the same samples, bit for bit: whole face (with
    a prior, so the content target takes its estimate there), masked with a given base, and best-of candidates."""
    clean = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    a, dmg = _scratched(clean, 10)
    b, _ = _scratched(clean, 20)
    assert not torch.equal(a, b)
    prior = ConstantPrior(torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(4)))
    pipe = _with_prior(tiny_pipe, prior)
    mask = torch.zeros(1, 1, S, S)
    mask[..., 4:28, 4:28] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(5))
    ref = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(6))
    for kw in (dict(), dict(mask=mask, base=base), dict(references=ref, identity_strength=0.8, candidates=2)):
        out_a = pipe(a, seeds=[7], steps=3, damage=dmg, **kw)
        out_b = pipe(b, seeds=[7], steps=3, damage=dmg, **kw)
        assert torch.equal(out_a.images, out_b.images), kw
        assert not torch.equal(out_a.images, pipe(a, seeds=[7], steps=3, **kw).images)  # the mark does something
        assert out_a.params["damage"] == pytest.approx(float((dmg > 0.5).float().mean()), abs=1e-4)


def test_no_damage_is_the_old_sampler_bit_for_bit(tiny_pipe):  # noqa: F811
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    prior = ConstantPrior(torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(4)))
    pipe = _with_prior(tiny_pipe, prior)
    old = pipe(x, seeds=[7], steps=3)
    new = pipe(x, seeds=[7], steps=3, damage=torch.zeros(1, 1, S, S))
    assert torch.equal(old.images, new.images) and old.params["damage"] is None


def test_damage_is_the_prior_target_and_a_given_base_is_filled(tiny_pipe, monkeypatch):  # noqa: F811
    """With a prior the content target inside the damage is the prior's estimate at the content scale; with a mask,
    outside it the output still equals the base, even where the damage is."""
    import frgd.diffusion.sampling.pipeline as pl

    seen = {}
    real = pl.back_project
    monkeypatch.setattr(pl, "back_project", lambda x, t: seen.setdefault("target", t) is None or real(x, t))
    x, dmg = _scratched(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)), 10)
    est = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(4))
    pipe = _with_prior(tiny_pipe, ConstantPrior(est))
    pipe(x, seeds=[7], steps=2, damage=dmg, prior_share=0.0)
    d8 = damage_at(dmg, (8, 8))[0, 0] > 0.5
    from frgd.diffusion.content import to_content_scale

    want = to_content_scale(est, (8, 8))
    torch.testing.assert_close(seen["target"][0][:, d8], want[0][:, d8])  # the prior's estimate where damaged
    torch.testing.assert_close(seen["target"][0][:, ~d8], x[0][:, ~d8])  # share 0: the input elsewhere

    mask = torch.zeros(1, 1, S, S)
    mask[..., :16, :] = 1
    base = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(pl, "back_project", real)
    out = pipe(x, seeds=[7], steps=2, damage=dmg, mask=mask, base=base)
    outside = (mask[0, 0] < 0.5).expand(3, -1, -1)
    assert torch.equal(out.images[0][outside], base[0][outside])


def test_bad_damage_is_refused(tiny_pipe):  # noqa: F811
    x = torch.rand(1, 3, 8, 8)
    for bad in (torch.zeros(1, 1, 8, 8), torch.full((1, 1, S, S), 2.0), torch.zeros(1, 3, S, S)):
        with pytest.raises(InputError, match="damage"):
            tiny_pipe(x, steps=1, damage=bad)


# ------------------------------------------------------------------------------------- restorers, photos, CLI
def test_crop_damage_keeps_a_thin_scratch_across_a_large_face():
    """A one-pixel scratch across a face three times larger than its crop stays one unbroken line in the crop."""
    from frgd.faces import FaceCrop, align_face
    from frgd.faces.align import TEMPLATE_512
    from frgd.restore import crop_damage

    photo = np.zeros((600, 600, 3), np.uint8)
    lm = (TEMPLATE_512 - TEMPLATE_512.mean(0)) * 0.75 + 300  # eyes ~190 px apart: native scale ~3
    crop = align_face(photo, lm, 128)
    assert isinstance(crop, FaceCrop) and crop.native_scale > 2.5
    d = np.zeros((600, 600), np.float32)
    d[300, 150:450] = 1
    c = crop_damage(d, crop)
    cols = np.nonzero(c.any(axis=0))[0]
    assert c.dtype == np.float32 and set(np.unique(c)) <= {0.0, 1.0}
    assert cols.size > 90 and np.all(np.diff(cols) == 1), "an unbroken line across the crop"
    assert c.sum(axis=0)[cols].max() <= 4, "a thin line, not a band"


@pytest.fixture
def tiny128(tmp_path, monkeypatch):
    """A tiny random 128 px FRGD model folder, and the tiny random identity encoder wherever the real one would load."""
    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import make_train_scheduler, save_model_dir
    from frgd.identity import IdentityEncoder

    enc = IdentityEncoder.tiny_random(0)
    monkeypatch.setattr("frgd.identity.get_identity_encoder", lambda backend="dlib", device="cpu": enc.to(device))
    torch.manual_seed(0)
    return save_model_dir(tmp_path / "tiny128", FRGDUNet(**tiny_config(sample_size=128)), make_train_scheduler())


def _enhance_both_ways(tmp_path, image: np.ndarray, damage: np.ndarray, args: list[str]) -> list[np.ndarray]:
    """``frgd enhance`` of ``image`` with black, then white, under ``damage`` (saved as ``damage.png`` and given with
    ``--damage``); the two outputs."""
    save_image(tmp_path / "damage.png", damage)
    outs = []
    for k, value in enumerate((0, 255)):
        img = image.copy()
        img[damage > 0] = value
        save_image(tmp_path / f"in{k}.png", img)
        out = tmp_path / f"out{k}.png"
        assert main(["enhance", str(tmp_path / f"in{k}.png"), *args, "--damage", str(tmp_path / "damage.png"),
                     "-o", str(out)]) == 0  # fmt: skip
        outs.append(load_rgb(out))
    return outs


def test_photo_pipeline_repairs_the_photo_and_ignores_what_the_damage_hides(tiny128, tmp_path, monkeypatch):
    """``frgd enhance PHOTO --damage``: the output does not depend on the photo's pixels under the damage, across the
    face and the background; the provenance names the damage image."""
    from test_restore import _face, _photo

    import frgd.faces.detect as detect_mod

    def fake(img, **kw):
        f = _face(60, 60, 16)
        f.index = 0
        return [f]

    monkeypatch.setattr(detect_mod, "detect_faces", fake)
    dmg = np.zeros((120, 140), np.uint8)
    dmg[58:60, 20:130] = 255  # across the face and the background
    args = ["--model", str(tiny128), "--steps", "2", "--seed", "3", "--scale", "1", "--sr-model", "bicubic"]
    a, b = _enhance_both_ways(tmp_path, _photo(1, 120, 140), dmg, args)
    np.testing.assert_array_equal(a, b)
    assert read_provenance(tmp_path / "out0.png")["parameters"]["damage"] == "damage.png"


def test_aligned_cli_damage(tiny128, tmp_path, capsys):
    """``frgd enhance --aligned --damage`` (the damage at the crop's own size): the output ignores the pixels under
    it, for a crop smaller and one larger than 128 px (a one-pixel scratch too), and the JSON names the damage image;
    a damage image of another size and a photo-sized damage with a batch are usage errors (exit 2)."""
    face = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    dmg = np.zeros((16, 16), np.uint8)
    dmg[7, 2:14] = 255
    args = ["--aligned", "--model", str(tiny128), "--steps", "2", "--seed", "1", "--json"]
    a, b = _enhance_both_ways(tmp_path, face, dmg, args)
    np.testing.assert_array_equal(a, b)
    first, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)  # the first run's record
    assert first["damage"] == "damage.png" and first["mode"] == "aligned"
    big = np.repeat(np.repeat(face, 16, axis=0), 16, axis=1)  # a 256 px crop: the damage is brought down to 128
    thin = np.zeros((256, 256), np.uint8)
    thin[101, 20:230] = 255  # one pixel on an odd row, which every other row of a nearest downscale skips
    (tmp_path / "big").mkdir()
    a, b = _enhance_both_ways(tmp_path / "big", big, thin, args)
    np.testing.assert_array_equal(a, b)
    capsys.readouterr()
    save_image(tmp_path / "d_big.png", np.zeros((20, 20), np.uint8))
    args = ["enhance", str(tmp_path / "in0.png"), "--aligned", "--model", str(tiny128), "--steps", "1"]
    assert main([*args, "--damage", str(tmp_path / "d_big.png"), "-o", str(tmp_path / "x.png")]) == 2
    assert "--damage must be the aligned crop's size 16x16" in capsys.readouterr().err
    folder = tmp_path / "batch"
    folder.mkdir()
    save_image(folder / "a.png", face)
    assert main(["enhance", str(folder), "--damage", str(tmp_path / "damage.png"), "-o", str(tmp_path / "out")]) == 2
    assert "--damage is photo-sized" in capsys.readouterr().err


def test_every_restorer_gets_its_input_filled(monkeypatch):
    """``Restorer.restore`` hands every method (here a recording stand-in) its input with the damage filled at the
    input's own size, and leaves it alone without damage."""
    from frgd.faces import align_face
    from frgd.faces.align import TEMPLATE_512
    from frgd.restore import FaceRequest, PhotoFace, Restorer

    seen = []

    class Spy(Restorer):
        method, name = "spy", "spy"

        def restore_crop(self, content, request, seeds, *, crop=None, progress=None, cancel=None):
            seen.append(content.copy())
            return []

    photo = (np.random.default_rng(0).random((300, 300, 3)) * 255).astype(np.uint8)
    lm = (TEMPLATE_512 - TEMPLATE_512.mean(0)) * 0.3 + 150
    face = PhotoFace(number=1, box=np.zeros(4), score=0.99, landmarks=lm, crop=align_face(photo, lm, 128))
    dmg = np.zeros((128, 128), np.float32)
    dmg[60:64, :] = 1
    Spy().restore(photo, face, FaceRequest(damage=dmg), [0])
    Spy().restore(photo, face, FaceRequest(), [0])
    rows = (dmg > 0.5).any(axis=1)
    assert (seen[0] != seen[1]).any(axis=2)[rows].any() and not (seen[0] != seen[1]).any(axis=2)[~rows].any()
    assert FaceRequest(damage=np.zeros((128, 128))).damage_at((16, 16)) is None


@pytest.mark.parametrize("eye_dist", [12.0, 150.0])  # a face smaller than its crop, and one larger
def test_photo_damage_is_the_mirror_of_crop_damage(eye_dist):
    """A crop-frame scratch taken to the photo (:func:`photo_damage`) and back (:func:`crop_damage`) covers the
    scratch again, unbroken, for a small and a large face; nothing marked gives ``None``."""
    from frgd.faces import align_face
    from frgd.faces.align import TEMPLATE_512
    from frgd.restore import crop_damage, photo_damage

    photo = np.zeros((500, 500, 3), np.uint8)
    t = TEMPLATE_512 - TEMPLATE_512.mean(0)
    crop = align_face(photo, t * (eye_dist / np.linalg.norm(t[1] - t[0])) + 250, 128)
    d = np.zeros((128, 128), np.float32)
    d[70, 20:110] = 1
    back = crop_damage(photo_damage(photo.shape[:2], [(d, crop.inverse)]), crop)
    assert back[69:72, 24:106].any(axis=0).all(), "the scratch comes back whole"
    assert back[:60].sum() == 0 and back[80:].sum() == 0, "and nowhere far from it"
    assert photo_damage(photo.shape[:2], [(np.zeros((128, 128)), crop.inverse)]) is None


def test_editor_panes_see_the_repaired_photo(tiny_gfpgan):  # noqa: F811
    """The editor's SR and GFPGAN panes fill the photo's damage layer first: their results do not depend on the
    photo's pixels under the marks, on a face or not."""
    from test_restore import _face, _photo

    from frgd_studio.model import backend

    photo = _photo(2, 160, 160)
    face = backend.make_face(photo, _face(80, 75, 40).landmarks)
    damage = np.zeros(photo.shape[:2], np.uint8)
    damage[70:72, 5:155] = 255  # across the face and the background
    damage[120:150, 20:24] = 200  # on the background only
    repaired = backend.repaired_photo(photo, damage)
    assert (repaired != photo).any() and backend.repaired_photo(photo, None) is photo
    outs = {"sr": [], "gfpgan": []}
    for value in (0, 255):
        p = photo.copy()
        p[damage > 127] = value
        outs["sr"].append(backend.run_sr(p, "bicubic", 2, "cpu", None, None, damage))
        outs["gfpgan"].append(backend.run_gfpgan(p, [face], "v1.4", 1.0, 2, "cpu", None, None, damage=damage))
    for name, (a, b) in outs.items():
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(outs["sr"][0], backend.run_sr(photo, "bicubic", 2, "cpu", None, None)), "a control"
