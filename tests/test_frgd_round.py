"""The GPU training round, rehearsed on the CPU: on-device batches (against the CPU ops they replace), the data pack,
the time-based LR schedule, the upload plan, and the whole round end to end (run -> land -> resume -> enhance)."""

from __future__ import annotations

import json
import lzma
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frgd.degrade import blur_tensor, gaussian_kernel
from frgd.diffusion.training.fusion import FusionConfig
from frgd.diffusion.training.gpu_batch import (
    CANVAS,
    DOWN_KERNELS,
    FaceTensors,
    GPUBatchMaker,
    GPUDegradation,
    GPUDegrader,
    blur_full,
    checkerboards,
    gaussian_kernels,
    gaussian_matrices,
    jpeg_dct,
    resize_matrix,
)
from frgd.diffusion.training.pack import QUALITIES, load_pack, synthetic_source, write_pack
from frgd.diffusion.training.round import land_round, lr_at, round_config, run_round, upload_bytes
from frgd.errors import InputError

REPO = Path(__file__).resolve().parents[1]

TINY_ROUND = {
    "name": "round_test",
    "model": {
        "tiny": True,
        "sample_size": 128,
        "block_out_channels": [8, 8, 8, 16],  # attention only at 16x16, like the shipped preset
        "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
        "norm_num_groups": 4,
        "attention_head_dim": 8,
        "prediction_type": "v_prediction",
    },
    "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
    "round": {
        "batch_sizes": [2, 3],
        "bench_steps": 1,
        "compile": False,
        "bf16": False,
        "channels_last": False,
        "reserve_s": 1,
        "warmup_s": 1,
        "log_every_s": 0.5,
        "export_every_s": 1000,
        "data_probe_every": 1,
        "val_count": 2,
        "val_steps": 2,
        "val_scales": [8, 4],
        "grid_faces": 2,
        "mask_bank": 8,
        "compile_cache_save_s": 0,  # seconds-long deadlines: the cache tests save after the deadline
    },
}


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """``(n, 3, size, size)`` smooth random images in [0, 1] (blurred noise + gradients), like photos for JPEG."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 8, size // 8, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    ramp = torch.linspace(0, 1, size)[None, None, None]
    return (0.7 * x + 0.3 * ramp).clamp(0, 1)


# ------------------------------------------------------------------------------------------------- degradation


@pytest.mark.parametrize("kernel", DOWN_KERNELS)
@pytest.mark.parametrize("n_out", [8, 23, 64, 128])
def test_resize_matrix_equals_torch_interpolate(kernel, n_out):
    x = torch.rand(2, 3, 128, 128, dtype=torch.float64)
    w = resize_matrix(128, n_out, kernel)
    kw = {} if kernel == "area" else {"align_corners": False, "antialias": True}
    ref = F.interpolate(x, size=(n_out, n_out), mode=kernel, **kw)
    assert torch.allclose(w @ x @ w.T, ref, atol=1e-12)


def test_degrader_resize_only_equals_down_then_bicubic_up():
    """With blur, noise and JPEG off, the canvas/matrix path equals torch's resize down and bicubic up, per sample."""
    cfg = GPUDegradation(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
    x = torch.rand(6, 3, 128, 128)
    out, params = GPUDegrader(cfg)(x, torch.Generator().manual_seed(3))
    assert len(set(params["lr_size"].tolist())) > 1  # several sizes share the canvas
    for i in range(6):
        l, k = int(params["lr_size"][i]), DOWN_KERNELS[int(params["kernel"][i])]
        kw = {} if k == "area" else {"align_corners": False, "antialias": True}
        lr = F.interpolate(x[i : i + 1], size=(l, l), mode=k, **kw).clamp(0, 1)
        ref = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
        assert torch.allclose(out[i : i + 1], ref, atol=2e-5), (i, l, k)


def test_low_resolution_blur_matches_degrade_blur_with_reflection():
    lengths = torch.tensor([11, 30, 64])
    sig = torch.tensor([1.5, 0.7, 2.5])
    g = gaussian_matrices(sig, lengths)
    for i, (l, s) in enumerate(zip(lengths.tolist(), sig.tolist())):
        v = torch.rand(1, 1, l, l, dtype=torch.float64)
        ref = blur_tensor(v, gaussian_kernel(21, s))[0, 0]
        canvas = torch.zeros(CANVAS, CANVAS, dtype=torch.float64)
        canvas[:l, :l] = v[0, 0]
        idx = torch.clamp(torch.arange(CANVAS), max=l - 1)
        canvas = canvas[idx][:, idx]
        ours = g[i].double() @ canvas @ g[i].double().T
        assert torch.allclose(ours[:l, :l], ref, atol=1e-6)
        assert torch.allclose(ours[l:, :l], ours[l - 1 : l, :l].expand(CANVAS - l, l))  # replicated padding rows
    assert torch.equal(gaussian_matrices(torch.zeros(1), torch.tensor([64]))[0], torch.eye(CANVAS))


def test_full_resolution_blur_matches_degrade_kernels():
    sx, sy, th = torch.tensor([2.0, 0.8, 0.0]), torch.tensor([0.9, 0.8, 0.0]), torch.tensor([0.6, 0.0, 0.0])
    k = gaussian_kernels(sx, sy, th)
    assert torch.allclose(k[0].double(), torch.from_numpy(gaussian_kernel(21, 2.0, 0.9, 0.6)), atol=1e-6)
    x = torch.rand(3, 3, 40, 40)
    out = blur_full(x, k)
    ref = blur_tensor(x[1:2].double(), gaussian_kernel(21, 0.8)).float()
    assert torch.allclose(out[1:2], ref, atol=1e-5)
    assert torch.allclose(out[2], x[2])  # sigma 0: no blur


@pytest.mark.parametrize("quality", [10, 30, 60, 90])
def test_jpeg_dct_matches_libjpeg(quality):
    x = smooth_images(4, 64, seed=quality)
    ours = jpeg_dct(x, torch.full((4,), float(quality)))
    u8 = np.round(x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    for i in range(4):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8[i, :, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        lib = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        mine = np.round(ours[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        lib = np.ascontiguousarray(lib)
        # the same distortion as libjpeg, and far closer to libjpeg's output than either is to the original
        assert abs(cv2.PSNR(u8[i], mine) - cv2.PSNR(u8[i], lib)) < 0.5
        assert cv2.PSNR(lib, mine) > cv2.PSNR(u8[i], lib) + 5.0
    assert not torch.equal(ours, torch.round(x * 255) / 255)  # it does compress


def test_jpeg_dct_quality_orders_the_error():
    x = smooth_images(2, 64, seed=1)
    errs = [float((jpeg_dct(x, torch.full((2,), float(q))) - x).pow(2).mean()) for q in (10, 50, 95)]
    assert errs[0] > errs[1] > errs[2]
    with pytest.raises(InputError):
        jpeg_dct(torch.rand(1, 3, 20, 20), torch.tensor([50.0]))


def test_checkerboards_cells_and_polarity():
    u = torch.tensor([[0.0, 0.0, 0.0, 0.9], [1.0, 0.5, 0.5, 0.1], [0.5, 0.99, 0.2, 0.9]])
    m = checkerboards(u, FusionConfig())
    assert m.shape == (3, 1, 128, 128)
    assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
    assert torch.equal(m[0, 0, :2, :4], torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]))  # cell 2, phase 0
    row = m[1, 0, 40]
    runs = torch.diff(torch.nonzero(torch.diff(row)).flatten())
    assert torch.all(runs == 64)  # cell 64
    assert abs(float(m[2].mean()) - 0.5) < 0.1


def _face_tensors(n_ident=(3, 1, 2), seed=0) -> FaceTensors:
    rng = np.random.default_rng(seed)
    ident = np.concatenate([np.full(k, i) for i, k in enumerate(n_ident)]).astype(np.int32)
    n = len(ident)
    faces = rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8)
    emb = rng.standard_normal((n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    aug = np.zeros((n, 2, 8), np.float32)
    aug[ident == 1] = rng.standard_normal((1, 2, 8))
    return FaceTensors.build(faces, ident, emb, aug, "cpu")


def test_batch_identity_is_another_photo_or_an_augmentation():
    data = _face_tensors()
    maker = GPUBatchMaker(data, seed=1, bank_size=4)
    ident = np.array([0, 0, 0, 1, 2, 2])
    for _ in range(5):
        b = maker.make(6)
        for i, idx in enumerate(b.index.tolist()):
            e = b.identity[i]
            if ident[idx] == 1:  # the only photo: one of its fixed augmentations
                aug = torch.nn.functional.normalize(data.aug_emb[idx], dim=1)
                assert min(float((e - a).abs().max()) for a in aug) < 1e-6
            else:
                sims = (data.emb @ e).tolist()
                j = int(np.argmax(sims))
                assert j != idx and ident[j] == ident[idx]
    assert torch.equal(
        GPUBatchMaker(data, seed=1, bank_size=4).make(6).degraded,
        GPUBatchMaker(data, seed=1, bank_size=4).make(6).degraded,
    )


def test_batch_masks_follow_the_fusion_probabilities():
    data = _face_tensors((20, 20, 24))
    maker = GPUBatchMaker(data, fusion=FusionConfig(p_fuse=1.0, p_checker=0.0, p_noisy=1.0), seed=2, bank_size=16)
    b = maker.make(32)
    cover = b.mask.mean(dim=(1, 2, 3))
    assert torch.all(b.noisy) and not torch.any(b.checker)
    assert torch.all((cover > 0.005) & (cover < 0.96))  # free masks, never all ones
    plain = GPUBatchMaker(data, fusion=FusionConfig(p_fuse=0.0), seed=2, bank_size=4).make(8)
    assert torch.all(plain.mask == 1) and not torch.any(plain.noisy)


# --------------------------------------------------------------------------------------------------- schedule


def test_lr_schedule_is_warmup_then_cosine_to_the_deadline():
    peak, lo = 1e-3, 0.05
    f = lambda t: lr_at(t, 100.0, 10.0, peak, lo)  # noqa: E731
    assert f(0) == 0 and math.isclose(f(5), peak / 2) and math.isclose(f(10), peak)
    assert math.isclose(f(55), peak * (lo + (1 - lo) / 2))  # cosine midpoint
    assert math.isclose(f(100), peak * lo) and math.isclose(f(1e6), peak * lo)
    vals = [f(t) for t in np.linspace(10, 100, 50)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_round_config_rejects_unknown_keys_and_bad_ranges():
    with pytest.raises(InputError):
        round_config(TINY_ROUND, {"bogus": 1})
    with pytest.raises(InputError):
        round_config({**TINY_ROUND, "round": {"degradation": {"scale_range": [1.0, 40.0]}}})
    cfg = round_config("round_frgd128")  # the shipped preset is valid and is the ~8 M-parameter model
    assert cfg["model"]["block_out_channels"] == [64, 96, 128, 128]


# ------------------------------------------------------------------------------------------------------- pack


def test_pack_round_trip(tmp_path):
    src = synthetic_source(n_train=12, n_identities=5, n_val=3, seed=4)
    src.ident[-4] = 99  # one identity with a single photo: its reference is an augmentation
    info = write_pack(src, tmp_path, quality=90)
    assert info["faces_train"] == 12 and info["val_targets"] == 3 and info["single_photo_faces"] == 1
    pack = load_pack(tmp_path)
    assert pack.train_images.shape == (12, 128, 128, 3) and pack.val_images.shape == (3, 128, 128, 3)
    psnr = cv2.PSNR(pack.train_images, src.images[:12])
    assert psnr > 35
    cos = (pack.train_emb * src.emb[:12]).sum(1)
    assert np.all(cos > 0.9999)
    lonely = src.ident[:12] == 99
    assert np.allclose(pack.train_aug_emb[lonely], src.aug_emb[:12][lonely], atol=0.003)
    assert not np.any(pack.train_aug_emb[~lonely])
    assert np.allclose(pack.val_ref_emb, src.emb[12:], atol=0.01)
    # validation targets are lossless whatever the training quality: every round validates on the same pixels
    assert np.array_equal(pack.val_images, src.images[12:])
    write_pack(src, tmp_path / "q60", quality=60)
    low = load_pack(tmp_path / "q60")
    assert np.array_equal(low.val_images, src.images[12:]) and cv2.PSNR(low.train_images, src.images[:12]) < psnr


def test_pack_auto_quality_fits_the_budget(tmp_path):
    src = synthetic_source(n_train=40, n_identities=8, n_val=2)
    best = write_pack(src, tmp_path / "a", quality=90)["bytes"]
    fitted = write_pack(src, tmp_path / "b", quality="auto", budget_bytes=best - 1)
    assert fitted["webp_quality"] < 90 and fitted["bytes"] <= best - 1
    with pytest.raises(InputError):
        write_pack(src, tmp_path / "c", quality="auto", budget_bytes=1000)


def test_pack_moves_aside_a_compile_cache_that_leaves_the_faces_no_room(tmp_path, monkeypatch):
    """``frgd round pack`` sizes the faces to what the tree and the carry leave. The compile cache kept in the tree
    (``KEPT_CACHE``) counts; one that leaves them no room even at the lowest quality is moved out of the tree (the round
    then compiles as before); one that leaves room stays, and the faces take a lower quality. A cache left in the carry
    by an older ``land`` is removed (the script reads the tree's copy only)."""
    import frgd.cli.cmd_round as cmd
    import frgd.diffusion.training.round as rnd
    from frgd.cli.main import main as frgd_main

    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/.carry/\n")
    carry = repo / ".carry" / "round"
    carry.mkdir(parents=True)
    kept = repo / cmd.KEPT_CACHE
    kept.parent.mkdir(parents=True)
    monkeypatch.setattr(cmd, "repo_root", lambda: repo)
    monkeypatch.setattr(cmd, "trim_diffusers", lambda dest: dest.write_bytes(b"z" * 100) or 100)
    src = synthetic_source(n_train=40, n_identities=8, n_val=2)
    low = write_pack(src, tmp_path / "floor", quality=QUALITIES[-1])["bytes"]
    best = write_pack(src, tmp_path / "q90", quality=QUALITIES[0])["bytes"]
    tree = upload_bytes(repo, [])["tree_bytes"]
    monkeypatch.setattr(rnd, "UPLOAD_LIMIT", rnd.UPLOAD_MARGIN + tree + 100 + best + 2048)  # best fits alone
    argv = ["round", "pack", "--synthetic", "40", "--out", str(carry)]

    kept.write_bytes(os.urandom(2048 + (best - low) // 2))  # room for a lower quality
    (carry / "compile_cache.bin").write_bytes(os.urandom(best))  # an older land's copy: it would take the faces' room
    assert frgd_main(argv) == 0
    first = json.loads((carry / "pack" / "pack.json").read_text())["webp_quality"]
    assert kept.is_file() and first < QUALITIES[0] and not (carry / "compile_cache.bin").exists()
    assert upload_bytes(repo, [".carry/round"])["fits"]

    kept.write_bytes(os.urandom(best))  # no room for the faces at any quality
    assert frgd_main(argv) == 0
    assert not kept.exists() and (carry.parent / cmd.DROPPED_CACHE).stat().st_size == best
    assert json.loads((carry / "pack" / "pack.json").read_text())["webp_quality"] > first
    assert upload_bytes(repo, [".carry/round"])["fits"]


def test_the_round_script_reads_the_cache_that_land_keeps():
    """``frgd round land`` keeps the compile cache at ``KEPT_CACHE`` and ``scripts/gpu_round.sh`` loads it from there:
    one path, named in both."""
    from frgd.cli.cmd_round import KEPT_CACHE

    script = (REPO / "scripts" / "gpu_round.sh").read_text()
    assert f'cache="${{ROUND_CACHE:-{KEPT_CACHE.as_posix()}}}"' in script
    # not ignored by git (a new checkout has it only if it is committed); exit 1: no ignore rule matches the path
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", KEPT_CACHE.as_posix()])
    assert ignored.returncode == 1


# ------------------------------------------------------------------------------------------------------- plan


def test_upload_bytes_counts_tree_and_carry(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/.carry/\n")
    (repo / "a.txt").write_bytes(b"x" * 1000)
    (repo / ".carry" / "p").mkdir(parents=True)
    (repo / ".carry" / "p" / "d.bin").write_bytes(b"y" * 5000)
    plan = upload_bytes(repo, [".carry/p"])
    assert plan["tree_bytes"] == 1000 + len("/.carry/\n")
    assert plan["carry_bytes"] == {".carry/p": 5000} and plan["fits"]
    (repo / "big.bin").write_bytes(b"z" * (61 * 2**20))
    assert not upload_bytes(repo, [])["fits"]  # under the 4 MiB margin
    with pytest.raises(InputError):
        upload_bytes(repo, ["missing"])


# ------------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pack")
    write_pack(synthetic_source(n_train=24, n_identities=6, n_val=2), d, quality=80)
    return d


def test_round_rehearsal_run_land_resume_enhance(pack_dir, tmp_path):
    """The whole round on CPU with a seconds-long deadline, then land, a second round from the landed weights, and
    the stable ``frgd enhance --aligned`` command on them."""
    from safetensors import safe_open

    from frgd.cli.main import main as frgd_main
    from frgd.diffusion.model import load_model_dir

    weights, results = tmp_path / "weights" / "frgd-128", tmp_path / "results"
    out1 = tmp_path / "r1"
    s1 = run_round(pack_dir, out1, deadline_s=4.0, preset=TINY_ROUND, init_dir=weights)
    assert s1["status"] == "complete" and s1["round"] == 1 and s1["init"]["from"] == "scratch"
    assert s1["steps"] >= 2 and s1["images"] >= 4 and s1["data_share"] is not None and 0 < s1["data_share"] < 1
    assert set(s1["val"]["scales"]) == {"x8", "x4"}
    for rows in s1["val"]["scales"].values():
        assert {"bicubic", "frgd_noref_content1", "frgd_ref_cfg1_content1"} <= set(rows)
        assert all(math.isfinite(r["psnr"]) and r["detail"] > 0 for r in rows.values())
    assert (out1 / "val_grid_x8.png").is_file() and s1["cumulative"]["images"] == s1["images"]
    use = s1["val"]["identity_use"]["scales"]
    assert set(use) == {"x8", "x4", "x32"}  # x32: the extreme inputs' regime (val_identity_scales)
    assert all(math.isfinite(u["mean_gain_vs_null"]) for u in use.values())
    detail = s1["val"]["model_detail"]["scales"]  # the detail the model keeps / invents (frgd.eval.model_detail)
    assert set(detail) == {"x8", "x4"} and all(len(rows) == 6 for rows in detail.values())
    assert all(math.isfinite(r["psnr"]) and r["detail"] > 0 for rows in detail.values() for r in rows)
    assert s1["identity_input"]["how"] == "set on the fresh model"
    with safe_open(str(out1 / "model" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    assert len([p for p in out1.rglob("*") if p.is_file()]) <= 8  # the device returns at most 8 files

    (out1 / "round.log").write_text("the log of round 1\n")
    land_round(out1, weights_dir=weights, results_dir=results)
    assert json.loads((results / "round_001.json").read_text())["round"] == 1
    assert (results / "round_001.log").read_text() == "the log of round 1\n"
    assert json.loads((weights / "round.json").read_text())["round"] == 1
    with pytest.raises(InputError):  # the same round cannot land twice
        land_round(out1, weights_dir=weights, results_dir=results)

    out2 = tmp_path / "r2"
    s2 = run_round(pack_dir, out2, deadline_s=3.0, preset=TINY_ROUND, init_dir=weights, overrides={"compile": False})
    assert s2["round"] == 2 and s2["init"]["round"] == 1 and s2["init"]["from"] == str(weights)
    assert s2["cumulative"]["images"] == s1["images"] + s2["images"]
    assert s2["warmup_s"] == round_config(TINY_ROUND)["round"]["resume_warmup_s"]
    assert s2["identity_input"]["how"] == "kept from the initial weights"
    # a round whose validation regressed is not landed (its record is kept); --force lands it
    worse = json.loads((out2 / "round.json").read_text())
    worse["val"]["scales"]["x8"]["frgd_noref_content1"]["psnr"] = (
        s1["val"]["scales"]["x8"]["frgd_noref_content1"]["psnr"] - 0.5
    )
    (out2 / "round.json").write_text(json.dumps(worse))
    with pytest.raises(InputError, match="x8 content end"):
        land_round(out2, weights_dir=weights, results_dir=results)
    assert json.loads((results / "round_002_not_landed.json").read_text())["not_landed"][0].startswith("x8")
    assert json.loads((weights / "round.json").read_text())["round"] == 1
    assert land_round(out2, weights_dir=weights, results_dir=results, force=True)["round"] == 2
    landed = load_model_dir(weights).model.config
    assert len(landed.identity_center) == landed.identity_dim and landed.identity_scale == s1["identity_input"]["scale"]

    lr = tmp_path / "lr.png"
    face = (load_pack(pack_dir).val_images[0][::8, ::8]).copy()
    cv2.imwrite(str(lr), face[:, :, ::-1])
    out_png = tmp_path / "out.png"
    code = frgd_main(["enhance", str(lr), "--aligned", "--seed", "3", "--samples", "1", "-o", str(out_png),
                      "--model", str(weights), "--steps", "2"])  # fmt: skip
    assert code == 0 and cv2.imread(str(out_png)).shape == (128, 128, 3)
    assert list(load_model_dir(weights).model.config.block_out_channels) == [8, 8, 8, 16]


def test_round_with_mismatched_weights_starts_from_scratch(pack_dir, tmp_path):
    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.model import make_train_scheduler, save_model_dir

    other = tmp_path / "other"
    save_model_dir(other, FRGDUNet(**tiny_config(sample_size=128)), make_train_scheduler())
    (other / "round.json").write_text(json.dumps({"round": 3, "cumulative": {"images": 999, "steps": 9, "rounds": 3}}))
    s = run_round(
        pack_dir,
        tmp_path / "o",
        2.0,
        preset=TINY_ROUND,
        init_dir=other,
        overrides={"val_count": 0, "bf16": True, "channels_last": True},  # the CUDA code paths, on the CPU
    )
    assert s["init"]["from"] == "scratch" and "architecture" in s["init"]["reason"]
    assert s["round"] == 4 and s["cumulative"]["images"] == s["images"]  # a new line of weights, a new count


def test_round_with_the_identity_loss(pack_dir, tmp_path):
    """``--set identity_loss.weight=W``: the round loads the student, adds the loss, logs it and records it; off by
    default (the shipped preset turns it on from round 8)."""
    from frgd.archs.identity_student_arch import IdentityStudent
    from frgd.diffusion.training.identity_loss import save_student

    torch.manual_seed(0)
    student = save_student(IdentityStudent(widths=(8, 12), head=4, dim=16, input_size=32), tmp_path / "student", {})
    over = {"val_count": 0, "log_every_s": 0.0, "bf16": True, "channels_last": True,  # the CUDA code paths
            "identity_loss": {"weight": 0.5, "student": str(student)}}  # fmt: skip
    s = run_round(pack_dir, tmp_path / "o", 3.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=over)
    assert s["identity_loss"]["weight"] == 0.5 and s["identity_loss"]["student"]["source"] == str(student)
    rows = [r for r in s["loss_curve"] if "identity_loss" in r]
    assert rows and all(0 <= r["identity_loss"] <= 2 for r in rows)
    assert 0 < s["identity_loss_flops_per_image"] < s["flops_per_image"]  # counted apart, and in the MFU
    off = run_round(pack_dir, tmp_path / "p", 2.0, preset=TINY_ROUND, init_dir=tmp_path / "none",
                    overrides={"val_count": 0, "log_every_s": 0.0})  # fmt: skip
    assert off["identity_loss"] == {"weight": 0.0, "t_max": 1000}
    assert not any("identity_loss" in r for r in off["loss_curve"])
    assert "identity_loss_flops_per_image" not in off
    with pytest.raises(InputError, match="identity_loss"):
        round_config(TINY_ROUND, {"identity_loss": {"weight": -1}})


def test_the_shipped_round_trains_with_the_shipped_student():
    """The shipped preset turns the identity loss on (from round 8) with the installed student, which a GPU round
    loads before its first step: it must be there and be a working recogniser (unit descriptors)."""
    from frgd.diffusion.training.identity_loss import IdentityLossConfig, load_student

    cfg = IdentityLossConfig.from_dict(round_config("round_frgd128")["round"]["identity_loss"])
    assert cfg.on and cfg.student is None  # the installed frgd-identity-student
    student = load_student(cfg.student)
    f = student(torch.rand(2, 3, 128, 128))
    assert f.shape == (2, student.dim)
    assert torch.allclose(f.norm(dim=1), torch.ones(2), atol=1e-4)


def test_regressions_compare_the_content_end_on_the_same_validation():
    from frgd.diffusion.training.round import LAND_ROW, LAND_TOLERANCE_DB, regressions

    def state(x8: float, x4: float, faces: int = 48) -> dict:
        return {"val": {"faces": faces, "scales": {"x8": {LAND_ROW: {"psnr": x8}}, "x4": {LAND_ROW: {"psnr": x4}}}}}

    old = state(21.72, 25.93)
    assert regressions(state(21.80, 25.93), old) == []
    assert regressions(state(21.72 - LAND_TOLERANCE_DB / 2, 25.93), old) == []  # within the tolerance
    assert regressions(state(21.60, 26.10), old) == ["x8 content end 21.60 dB < 21.72 dB"]
    assert len(regressions(state(21.60, 25.80), old)) == 2
    assert regressions(state(20.0, 20.0, faces=24), old) == []  # another validation set: nothing to compare
    assert regressions({"val": {"error": "boom"}}, old) == [] and regressions(state(1, 1), {}) == []


def test_val_text_gives_the_detail_where_the_round_measured_it():
    from frgd.cli.cmd_round import val_text

    old = {"val": {"scales": {"x8": {"bicubic": {"psnr": 21.97}, "frgd_noref_content1": {"psnr": 21.74}}}}}
    assert val_text(old) == "x8: bicubic 21.97 dB, FRGD content end 21.74 dB"  # rounds 1-7: no detail
    new = {"val": {"scales": {"x8": {"bicubic": {"psnr": 21.97, "detail": 0.002},
                                     "frgd_noref_content1": {"psnr": 21.8, "detail": 0.1614}}}}}  # fmt: skip
    assert val_text(new) == "x8: bicubic 21.97 dB (detail 0.002), FRGD content end 21.80 dB (detail 0.161)"
    rows = [{"probe": p, "t": t, "detail": d, "psnr": 30.0 + t / 100} for p, d in (("kept", 0.8), ("invented", 0.02))
            for t in (150, 300)]  # fmt: skip
    lines = val_text({**new, "val": {**new["val"], "model_detail": {"scales": {"x8": rows}}}}).splitlines()
    assert lines[-2:] == ["  x8 kept     t=150 0.800 (31.50 dB), t=300 0.800 (33.00 dB)",
                          "  x8 invented t=150 0.020 (31.50 dB), t=300 0.020 (33.00 dB)"]  # fmt: skip


def test_identity_input_is_converted_kept_set_or_left():
    """``prepare_identity_input``: trained weights without a standardised identity input are converted with their
    function kept (what round 6 does to round 5's weights); weights that have one keep it; a fresh model gets it set;
    ``identity_standardise: false`` leaves the input as it is."""
    from frgd.archs.frgd_unet_arch import FRGDUNet, tiny_config
    from frgd.diffusion.training.train import prepare_identity_input

    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(2 * torch.randn(16, generator=g) + torch.randn(40, 16, generator=g), dim=1)
    x, cond = torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 7, 32, 32, generator=g)
    t, ident = torch.tensor([100, 700]), emb[:2]
    torch.manual_seed(0)
    trained = FRGDUNet(**tiny_config(identity_dim=16)).eval()
    with torch.no_grad():
        before = trained(x, t, cond, identity=ident)
        rec = prepare_identity_input(trained, emb.numpy(), enabled=True, trained=True)
        torch.testing.assert_close(trained(x, t, cond, identity=ident), before, atol=2e-5, rtol=1e-4)
    assert rec["how"].startswith("converted") and rec["embeddings"] == 40 and trained.config.identity_center
    assert prepare_identity_input(trained, emb.numpy(), True, True)["how"] == "kept from the initial weights"
    fresh = FRGDUNet(**tiny_config(identity_dim=16))
    w = fresh.identity_mlp[0].weight.detach().clone()
    assert prepare_identity_input(fresh, emb.numpy(), True, False)["how"] == "set on the fresh model"
    assert torch.equal(fresh.identity_mlp[0].weight, w) and fresh.config.identity_scale == rec["scale"]
    off = FRGDUNet(**tiny_config(identity_dim=16))
    assert prepare_identity_input(off, emb.numpy(), False, True) == {"standardised": False}
    assert off.config.identity_center is None


GPU_MACHINE_LACKS = ("platformdirs", "PySide6", "skvideo", "facenet_pytorch", "face_recognition_models", "dlib")
"""Packages the project installs that the lent GPU machine does not have (its package list: the device tool's
KINDS.md); diffusers is not there either and comes from the carried zip."""

BLOCKER = """
import importlib.abc, sys
class _NotOnTheGPUMachine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)")
        return None
sys.meta_path.insert(0, _NotOnTheGPUMachine())
"""


def script_setup(pack_dir, tmp_path, **round_over) -> tuple[Path, Path, Path, dict[str, str], int]:
    """What ``scripts/gpu_round.sh`` finds on the GPU machine, here: the carry folder (the trimmed diffusers zip and
    the pack), a tiny preset with ``round_over``, a ``sitecustomize`` that makes the packages the machine lacks
    unimportable, and the environment (no FRGD settings). Returns ``(carry, preset, block, env, zip_bytes)``."""
    from frgd.cli.cmd_round import trim_diffusers

    carry = tmp_path / "carry"
    zsize = trim_diffusers(carry / "diffusers.zip")
    os.symlink(pack_dir, carry / "pack")
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps({**TINY_ROUND, "round": {**TINY_ROUND["round"], **round_over}}))
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(GPU_MACHINE_LACKS)))
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "ROUND_CARRY": os.path.relpath(carry, REPO),
        "PYTHONPATH": str(block),
        "ROUND_KEEP": str(tmp_path / "keep"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "ROUND_CACHE": str(tmp_path / "no_kept_cache.bin"),
    }  # fmt: skip  (not the tree's real one)
    for var in ("FRGD_CACHE_DIR", "FRGD_CONFIG_DIR"):  # the GPU machine has no such settings
        env.pop(var, None)
    return carry, preset, block, env, zsize


def test_gpu_round_script_runs_on_cpu(pack_dir, tmp_path):
    """``scripts/gpu_round.sh`` itself (the one device command), with the trimmed diffusers zip first on the path and
    the packages the GPU machine lacks made unimportable, so a missing import fails here and not in GPU time."""
    # with the identity loss, as the shipped preset: its student's weights are searched for as the product's are (round
    # 8's first call failed there: the user cache folder is named by platformdirs, which the machine lacks)
    carry, preset, block, env, zsize = script_setup(
        pack_dir, tmp_path, val_count=1, val_scales=[8], identity_loss={"weight": 0.002}
    )
    assert 0 < zsize < 4 * 2**20
    out = tmp_path / "OUT"
    env.update(OUT=str(out), ROUND_DEADLINE_S="6")
    probe = "import diffusers, sys; sys.stdout.write(diffusers.__file__)"
    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_round.sh"), "--preset", str(preset), "--init", str(tmp_path / "none")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    state = json.loads((out / "round.json").read_text())
    assert state["status"] == "complete" and (out / "round.log").is_file() and (out / "model" / "config.json").is_file()
    assert state["compile_cache_given"] is None  # none kept yet
    assert state["identity_loss"]["weight"] == 0.002 and state["identity_loss"]["student"]["params"] > 0
    # a second call on the same (warm) machine continues from the first one's weights, without landing them
    keep = tmp_path / "keep"
    assert json.loads((keep / "round.json").read_text())["round"] == state["round"] and (keep / "config.json").is_file()
    gone = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_round.sh"), "--preset", str(preset)],
        env={**env, "ROUND_KEEP": str(tmp_path / "given_back"), "ROUND_CONTINUE": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gone.returncode == 3 and "ROUND_CONTINUE" in gone.stderr  # a fresh machine: nothing to continue from
    kept = tmp_path / "kept.bin"  # stands for KEPT_CACHE, landed from an earlier session
    kept.write_bytes(b"an earlier round's kernels")
    res2 = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_round.sh"), "--preset", str(preset)],
        env={**env, "ROUND_CONTINUE": "1", "ROUND_CACHE": str(kept)}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert res2.returncode == 0, res2.stdout[-2000:] + res2.stderr[-2000:]
    state2 = json.loads((out / "round.json").read_text())
    assert state2["round"] == state["round"] + 1 and state2["init"]["from"] == str(keep)
    assert state2["compile_cache_given"] == "kept.bin"  # the script passes the kept cache to the round
    assert json.loads((keep / "round.json").read_text())["round"] == state2["round"]  # kept for a third call
    blocked = subprocess.run(
        [sys.executable, "-c", "import platformdirs"], env={**os.environ, "PYTHONPATH": str(block)}, capture_output=True
    )
    assert blocked.returncode != 0  # the blocker is effective
    zpath = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(carry / 'diffusers.zip')!r}); {probe}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "diffusers.zip" in zpath


def test_a_detached_round_outlives_its_first_command(pack_dir, tmp_path):
    """``ROUND_DETACH``: the round runs on in its own process session after the first command returns with a snapshot
    (status ``partial``); ``ROUND_ATTACH`` brings its deadline forward to the second command's, waits, and returns the
    finished round; the fallbacks exit 3 (no detached round) and 4 (it was killed with the first command)."""
    _, preset, _, env, _ = script_setup(
        pack_dir, tmp_path, val_count=1, val_scales=[8], reserve_s=8, val_identity_use=False
    )
    bg, keep = tmp_path / "bg", Path(env["ROUND_KEEP"])
    env["ROUND_BG"] = str(bg)
    script = ["bash", str(REPO / "scripts" / "gpu_round.sh"), "--preset", str(preset), "--init", str(tmp_path / "no")]
    first = subprocess.run(
        script,
        # the snapshot is asked for at 8 s and served after the next step: on a loaded machine the tiny round's steps
        # took 7 s each (a fixed 6-s wait then missed it), and with two busy processes on the 2-core VM its start and
        # first step took more than 40 s; the command returns as soon as it is served
        env={**env, "OUT": str(tmp_path / "out1"), "ROUND_DETACH": "1", "ROUND_DEADLINE_S": "150",
             "ROUND_CALL_S": "100", "ROUND_SNAPSHOT_WAIT_S": "92"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "the round goes on" in first.stdout
    pid = int((bg / "pid").read_text())
    os.kill(pid, 0)  # still running after the command returned
    snap = json.loads((tmp_path / "out1" / "round.json").read_text())
    assert snap["status"] == "partial" and snap["steps"] >= 1
    assert (tmp_path / "out1" / "model" / "config.json").is_file()
    assert (tmp_path / "out1" / "round.log").is_file() and (keep / "config.json").is_file()  # ROUND_CONTINUE's start
    second = subprocess.run(
        script,
        env={**env, "OUT": str(tmp_path / "out2"), "ROUND_ATTACH": "1", "ROUND_DEADLINE_S": "12",
             "ROUND_ATTACH_GRACE_S": "60"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    done = json.loads((tmp_path / "out2" / "round.json").read_text())
    assert done["status"] == "complete" and done["round"] == snap["round"] and done["steps"] > snap["steps"]
    (change,) = done["deadline_changes"]  # brought forward from 150 s to the second command's end
    assert change["from_s"] == 150 and snap["elapsed_s"] < change["to_s"] < 150
    assert abs(done["deadline_s"] - change["to_s"]) < 0.1
    assert done["elapsed_s"] < 150 and json.loads((keep / "round.json").read_text())["steps"] == done["steps"]
    gone = subprocess.run(
        script, env={**env, "OUT": str(tmp_path / "out3"), "ROUND_ATTACH": "1", "ROUND_BG": str(tmp_path / "fresh")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gone.returncode == 3 and "ROUND_ATTACH" in gone.stderr
    (bg / "rc").unlink()  # as if the round had been killed with its first command: its pid is gone, no exit code
    killed = subprocess.run(
        script, env={**env, "OUT": str(tmp_path / "out4"), "ROUND_ATTACH": "1"}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert killed.returncode == 4 and "ROUND_CONTINUE" in killed.stderr


def test_gpu_degradation_ranges_are_the_cpu_pipelines():
    from dataclasses import fields

    from frgd.degrade import DegradationConfig

    cpu, gpu = DegradationConfig(), GPUDegradation()
    shared = [f.name for f in fields(GPUDegradation) if hasattr(cpu, f.name)]
    assert len(shared) >= 11
    assert all(getattr(gpu, k) == getattr(cpu, k) for k in shared)


def _fake_compile(calls: list, monkeypatch, fail: bool = False):
    """A stand-in for ``torch.compile``: the background thread's call waits until the training thread has made two
    more steps (a compile that takes a while), or raises."""
    import threading

    import frgd.diffusion.training.round as rnd

    steps = [0]
    train_step = rnd.RoundTrainer.train_step

    def counting(self, *a, **k):
        steps[0] += 1
        return train_step(self, *a, **k)

    monkeypatch.setattr(rnd.RoundTrainer, "train_step", counting)

    def compile_(model, *a, **k):
        def run(*args, **kw):
            name = threading.current_thread().name
            calls.append((name, model))
            if name == "frgd-round-compile":
                if fail:
                    raise RuntimeError("inductor exploded")
                start, t0 = steps[0], time.monotonic()
                while steps[0] < start + 2 and time.monotonic() - t0 < 60:
                    time.sleep(0.01)
            return model(*args, **kw)

        return run

    return compile_


def test_background_compile_trains_meanwhile_then_is_adopted(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    calls: list = []
    monkeypatch.setattr(torch, "compile", _fake_compile(calls, monkeypatch))
    rnd = {"compile": True, "compile_in_background": True, "compile_min_left_s": 0.0, "batch_sizes": [2]}
    s = run_round(pack_dir, tmp_path / "o", 8.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd)
    b = s["bench"]
    assert b["compile_in_background"] and b["images_during_compile"] >= 2  # eager steps went on meanwhile
    assert b["chosen"]["compile"] is True and s["compiled"] and b["switch_s"] >= 0
    assert b["compiled_vs_eager_rel_err"] < 1e-6  # the same model: the agreement check passes
    background = [m for n, m in calls if n == "frgd-round-compile"]
    main = [m for n, m in calls if n == "MainThread"]
    assert len(background) == 1 and main  # compiled once in the thread, then trained with in the main thread
    assert background[0] is not main[0]  # the thread compiled a copy: the trained weights were never touched there
    assert s["status"] == "complete" and s["img_per_s_final"] > 0


def test_compiled_code_with_the_copys_weights_is_refused(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    """Were the compiled code to compute with the weights of the copy it was compiled from (stale after eager steps),
    the agreement check on the captured inputs refuses it and the round stays eager."""
    first: list = []
    calls: list = []
    fake = _fake_compile(calls, monkeypatch)

    def stale(model, *a, **k):
        first.append(model)
        return fake(first[0])  # always the copy's weights

    monkeypatch.setattr(torch, "compile", stale)
    rnd = {"compile": True, "compile_in_background": True, "compile_min_left_s": 0.0, "batch_sizes": [2], "lr": 0.05,
           "warmup_s": 0.01}  # fmt: skip
    s = run_round(pack_dir, tmp_path / "o", 8.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd)
    b = s["bench"]
    assert b["compiled_vs_eager_rel_err"] > 0.02 and not s["compiled"] and b["chosen"]["compile"] is False
    assert any("disagrees" in r.get("error", "") for r in b["runs"]) and s["status"] == "complete"


def test_a_failed_background_compile_stays_eager(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    calls: list = []
    monkeypatch.setattr(torch, "compile", _fake_compile(calls, monkeypatch, fail=True))
    rnd = {"compile": True, "compile_in_background": True, "compile_min_left_s": 0.0, "batch_sizes": [2]}
    s = run_round(pack_dir, tmp_path / "o", 4.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd)
    b = s["bench"]
    assert s["status"] == "complete" and not s["compiled"] and b["chosen"]["compile"] is False
    assert any("inductor exploded" in r.get("error", "") for r in b["runs"])
    assert all(n == "frgd-round-compile" for n, _ in calls)


def test_the_default_compile_is_synchronous(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    """The background compile ran out of GPU memory on the H100 (round 3): the default compiles in the main thread."""
    calls: list = []
    monkeypatch.setattr(torch, "compile", _fake_compile(calls, monkeypatch))
    rnd = {"compile": True, "batch_sizes": [2]}
    s = run_round(pack_dir, tmp_path / "o", 4.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd)
    assert s["compiled"] and s["bench"]["compile_s"] > 0 and {n for n, _ in calls} == {"MainThread"}


def _fake_cache(monkeypatch, payload: bytes = b"compiled kernels", load_error: bool = False) -> list[bytes]:
    """Stand-ins for torch's portable compile cache: save returns ``payload``; load records what it was given."""
    from types import SimpleNamespace

    loaded: list[bytes] = []

    def load(data: bytes):
        if load_error:
            raise RuntimeError("made by another torch")
        loaded.append(data)
        return SimpleNamespace(artifacts={"inductor": ["a", "b"], "aot_autograd": ["c"]})

    monkeypatch.setattr(
        torch.compiler, "save_cache_artifacts", lambda: (payload, SimpleNamespace(artifacts={"x": [1]}))
    )
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", load)
    return loaded


def test_compile_cache_goes_from_one_round_to_the_next(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    """A compiled round saves the compile cache into OUT; landing keeps it (in the tree: ``KEPT_CACHE``); the next round
    loads it before compiling and trusts the compiled model only after it agrees with the eager one on real inputs."""
    from types import SimpleNamespace

    calls: list = []
    monkeypatch.setattr(torch, "compile", _fake_compile(calls, monkeypatch))
    loaded = _fake_cache(monkeypatch)
    weights, results, kept = tmp_path / "weights", tmp_path / "results", tmp_path / "kept" / "compile_cache.bin"
    rnd = {"compile": True, "batch_sizes": [2]}
    s1 = run_round(pack_dir, tmp_path / "r1", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=rnd)
    saved = s1["bench"]["compile_cache"]["save"]
    stored = (tmp_path / "r1" / "compile_cache.bin").read_bytes()
    assert s1["compiled"] and saved["raw_bytes"] == len(b"compiled kernels") and saved["saved_bytes"] == len(stored)
    assert lzma.decompress(stored) == b"compiled kernels" and not loaded  # stored compressed
    assert s1["compile_cache_given"] is None and "compiled_vs_eager_rel_err" not in s1["bench"]
    assert len([p for p in (tmp_path / "r1").rglob("*") if p.is_file()]) <= 8  # the device returns at most 8 files
    land_round(tmp_path / "r1", weights_dir=weights, results_dir=results, keep_cache=kept)
    assert kept.read_bytes() == stored

    s2 = run_round(pack_dir, tmp_path / "r2", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=rnd,
                   compile_cache=kept)  # fmt: skip
    got = s2["bench"]["compile_cache"]
    assert loaded == [b"compiled kernels"] and got["bytes"] == len(stored)
    assert got["artifacts"] == {"inductor": 2, "aot_autograd": 1} and s2["compile_cache_given"] == "compile_cache.bin"
    assert s2["bench"]["compiled_vs_eager_rel_err"] < 1e-6 and s2["compiled"]

    # over the size cap: not saved (the upload has no room for it); an unloadable cache is skipped, not fatal
    small = {**rnd, "compile_cache_max_mib": 1e-6}
    s3 = run_round(pack_dir, tmp_path / "r3", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=small)
    assert s3["bench"]["compile_cache"]["save"]["why"] == "over compile_cache_max_mib"
    assert not (tmp_path / "r3" / "compile_cache.bin").exists() and s3["compiled"]
    _fake_cache(monkeypatch, load_error=True)
    s4 = run_round(pack_dir, tmp_path / "r4", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=rnd,
                   compile_cache=kept)  # fmt: skip
    assert "another torch" in s4["bench"]["compile_cache"]["error"] and s4["compiled"] and s4["status"] == "complete"
    # too little time left before the deadline (round 7's second call was killed compressing it): not even tried
    late = {**rnd, "compile_cache_save_s": 1e6}
    s5 = run_round(pack_dir, tmp_path / "r5", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=late)
    assert "compile_cache_save_s" in s5["bench"]["compile_cache"]["save"]["why"] and s5["status"] == "complete"
    assert not (tmp_path / "r5" / "compile_cache.bin").exists()
    # the validated state is written before the compression starts (a kill while compressing keeps it)
    seen: list[str] = []

    def save_after_state():
        seen.append(json.loads((tmp_path / "r6" / "round.json").read_text())["status"])
        return b"kernels", SimpleNamespace(artifacts={})

    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", save_after_state)
    s6 = run_round(pack_dir, tmp_path / "r6", 4.0, preset=TINY_ROUND, init_dir=weights, overrides=rnd)
    assert seen == ["complete"] and s6["bench"]["compile_cache"]["save"]["raw_bytes"] == len(b"kernels")
    assert json.loads((tmp_path / "r6" / "round.json").read_text())["bench"]["compile_cache"]["save"]["saved_bytes"]


def test_cached_code_that_disagrees_with_eager_is_refused(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    """Were a loaded cache to hand back code that computes something else (here: another model's weights), the
    agreement check refuses it and the round trains eagerly."""
    from frgd.diffusion.training.train import build_model

    _fake_cache(monkeypatch)
    cache = tmp_path / "compile_cache.bin"
    cache.write_bytes(lzma.compress(b"foreign"))
    torch.manual_seed(123)
    other = build_model(round_config(TINY_ROUND))
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: other)
    rnd = {"compile": True, "batch_sizes": [2]}
    s = run_round(pack_dir, tmp_path / "o", 4.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd,
                  compile_cache=cache)  # fmt: skip
    b = s["bench"]
    assert b["compiled_vs_eager_rel_err"] > 0.02 and not s["compiled"] and b["chosen"]["compile"] is False
    # the refused code is compiled again from scratch once; that disagrees too (this stand-in always does): eager
    assert b["compile_cache"]["cold_retry"] and sum("disagrees" in r.get("error", "") for r in b["runs"]) == 2
    assert s["status"] == "complete"
    assert not (tmp_path / "o" / "compile_cache.bin").exists()  # nothing compiled is kept for the next round


def test_refused_cached_code_is_compiled_again_from_scratch(pack_dir, tmp_path, monkeypatch, one_torch_thread):
    """Cached code that disagrees with eager is not the end of the compiled round: the round compiles once more with
    inductor's graph cache and AOT-autograd's cache off, checks that code too, and trains compiled with it."""
    from torch._functorch import config as functorch_config
    from torch._inductor import config as inductor_config

    from frgd.diffusion.training.train import build_model

    _fake_cache(monkeypatch)
    cache = tmp_path / "compile_cache.bin"
    cache.write_bytes(lzma.compress(b"stale"))
    torch.manual_seed(123)
    other = build_model(round_config(TINY_ROUND))
    seen: list[tuple[bool, bool]] = []
    first_call: list = []

    def compile_(model, *a, **k):
        seen.append((inductor_config.fx_graph_cache, functorch_config.enable_autograd_cache))
        if len(seen) == 1:
            return other  # the carried cache's code: another model's weights

        def run(*args, **kw):  # compiled from scratch: computes with the model's own weights
            if not first_call:  # the call where inductor compiles: cold too
                first_call.append(inductor_config.fx_graph_cache)
            return model(*args, **kw)

        return run

    monkeypatch.setattr(torch, "compile", compile_)
    rnd = {"compile": True, "batch_sizes": [2]}
    s = run_round(pack_dir, tmp_path / "o", 4.0, preset=TINY_ROUND, init_dir=tmp_path / "none", overrides=rnd,
                  compile_cache=cache)  # fmt: skip
    b = s["bench"]
    assert seen == [(True, True), (False, False)] and b["compile_cache"]["cold_retry"] and first_call[0] is False
    assert s["compiled"] and b["chosen"]["compile"] and b["compiled_vs_eager_rel_err"] < 1e-6
    assert sum("disagrees" in r.get("error", "") for r in b["runs"]) == 1 and s["status"] == "complete"
    assert inductor_config.fx_graph_cache and functorch_config.enable_autograd_cache  # restored afterwards


def test_a_round_cut_before_its_check_is_validated_here_then_lands(pack_dir, tmp_path, capsys):
    """A command killed between export and validation (round 7) leaves ``status: trained`` and no ``val``: landing
    refuses it, ``frgd round validate`` runs the round's own check here on the exported weights into a copy, and the
    copy lands (and would be refused if it had regressed)."""
    from frgd.cli.main import EXIT_USAGE
    from frgd.cli.main import main as frgd_main

    weights, results = tmp_path / "weights", tmp_path / "results"
    run_round(pack_dir, tmp_path / "r1", 4.0, preset=TINY_ROUND, init_dir=weights)
    land_round(tmp_path / "r1", weights_dir=weights, results_dir=results)
    out2 = tmp_path / "r2"
    s2 = run_round(pack_dir, out2, 3.0, preset=TINY_ROUND, init_dir=weights)
    cut = {k: v for k, v in s2.items() if k != "val"}
    (out2 / "round.json").write_text(json.dumps({**cut, "status": "trained"}))
    with pytest.raises(InputError, match="frgd round validate"):
        land_round(out2, weights_dir=weights, results_dir=results)
    assert json.loads((weights / "round.json").read_text())["round"] == 1

    v2 = tmp_path / "v2"
    assert frgd_main(["round", "validate", str(out2), "--pack", str(pack_dir), "--out", str(v2)]) == 0
    v = json.loads((v2 / "round.json").read_text())
    assert v["status"] == "complete" and v["val_after"]["status_before"] == "trained" and v["round"] == 2
    assert (v2 / "val_grid_x8.png").is_file() and json.loads((out2 / "round.json").read_text())["status"] == "trained"
    for scale, rows in s2["val"]["scales"].items():  # the machine's own check, reproduced from the fp16 export
        for name, row in rows.items():
            assert v["val"]["scales"][scale][name]["psnr"] == pytest.approx(row["psnr"], abs=0.05), (scale, name)
    assert frgd_main(["round", "validate", str(out2), "--pack", str(pack_dir), "--out", str(v2)]) == EXIT_USAGE
    assert "not empty" in capsys.readouterr().err
    assert land_round(v2, weights_dir=weights, results_dir=results)["round"] == 2
    assert json.loads((results / "round_002.json").read_text())["val_after"]["device"] == "cpu"


def test_a_failed_validation_keeps_the_round(pack_dir, tmp_path, monkeypatch):
    import frgd.diffusion.training.round as rnd

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(rnd, "validate", broken)
    s = run_round(pack_dir, tmp_path / "o", 2.0, preset=TINY_ROUND, init_dir=tmp_path / "none")
    assert s["status"] == "complete" and s["val"] == {"error": "RuntimeError: boom"}
    assert (tmp_path / "o" / "model" / "diffusion_pytorch_model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------- shipped weights
def test_shipped_frgd128_is_a_landed_round():
    """The committed ``frgd-128`` is what the rounds trained: the round preset's architecture, fp16 within the 16 MiB
    return limit, its ``round.json`` beside it and recorded under docs/results/rounds, finite, and it samples."""
    from frgd.diffusion.model import WEIGHTS_FILE
    from frgd.diffusion.training.round import ROUND_FILE, default_init_dir
    from frgd.diffusion.training.train import architecture
    from frgd.restore import load_frgd_pipeline

    d = default_init_dir()
    state = json.loads((d / ROUND_FILE).read_text())
    assert state["round"] >= 1 and state["status"] == "complete"
    recorded = REPO / "docs" / "results" / "rounds" / f"round_{state['round']:03d}.json"
    assert json.loads(recorded.read_text())["cumulative"] == state["cumulative"]
    assert (d / WEIGHTS_FILE).stat().st_size < 16 * 2**20
    pipe = load_frgd_pipeline(None, device="cpu")
    assert architecture(dict(pipe.model.config)) == architecture(round_config("round_frgd128")["model"])
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in pipe.model.parameters())
    lq = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = pipe(lq, num_samples=1, seeds=[0], steps=2, identity_strength=0.0)
    assert out.images.shape == (1, 3, 128, 128) and torch.isfinite(out.images).all()


def test_degrader_extreme_inputs():
    """The on-device extreme inputs: their share, their 2-5 px sizes (the canvas tables reach 2 px), and inputs that
    keep the face's mean colour but hardly any of its detail."""
    x = torch.rand(512, 3, 128, 128)
    x = F.avg_pool2d(x, 9, stride=1, padding=4)  # some structure at a few pixels, as a face has
    out, params = GPUDegrader(GPUDegradation(extreme_prob=0.3))(x, torch.Generator().manual_seed(0))
    lr = params["lr_size"]
    extreme = lr <= 5
    assert abs(extreme.float().mean().item() - 0.3) < 0.07  # 512 seeded draws, SE 0.02
    assert torch.isfinite(out).all() and lr.min() >= 2
    never = GPUDegrader(GPUDegradation(extreme_prob=0.0))(x[:64], torch.Generator().manual_seed(0))[1]["lr_size"]
    assert never.min() >= 8  # 128 / 16
    clean = GPUDegradation(extreme_prob=1.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
    out1, p1 = GPUDegrader(clean)(x[:8], torch.Generator().manual_seed(1))
    assert int(p1["lr_size"].max()) <= 5
    mean_err = (out1.mean(dim=(2, 3)) - x[:8].mean(dim=(2, 3))).abs().max()
    detail_in, detail_out = x[:8].std(dim=(2, 3)).mean(), out1.std(dim=(2, 3)).mean()
    assert mean_err < 0.02 and detail_out < 0.6 * detail_in
