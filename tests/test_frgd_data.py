"""FRGD training data: fusion masks and conditioning, FacesDataset (folder and shards), embeddings, sampler."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import load_script, shared_path, write_labels

from frgd.diffusion.model import build_cond
from frgd.diffusion.training.data import (
    EpochSampler,
    FacesDataConfig,
    FacesDataset,
    SyntheticFaces,
    augment_reference,
    collate,
)
from frgd.diffusion.training.fusion import (
    FusionConfig,
    checkerboard_mask,
    fusion_loss_weights,
    sample_fusion_mask,
    sample_fusion_masks,
    seam_band,
)
from frgd.errors import InputError
from frgd.faces.align import FACE_REGIONS, face_region_mask, template

TEMPLATE_128 = template(128)


def _make_shards_module():
    return load_script("make_shards")


# --------------------------------------------------------------------------------------------------- fusion


def test_fusion_masks_deterministic_binary():
    a = sample_fusion_masks(8, np.random.default_rng(3), size=(32, 32))
    b = sample_fusion_masks(8, np.random.default_rng(3), size=(32, 32))
    assert a.shape == (8, 1, 32, 32) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    c = sample_fusion_masks(8, torch.Generator().manual_seed(0), size=(32, 32))
    assert c.shape == (8, 1, 32, 32)


def test_fusion_kind_frequencies():
    cfg = FusionConfig(p_fuse=0.5, p_noisy=0.3, p_checker=0.25)
    rng = np.random.default_rng(0)
    draws = [sample_fusion_mask(rng, (16, 16), cfg) for _ in range(1500)]
    kinds = np.array([d.kind for d in draws])
    noisy = np.array([d.noisy for d in draws])
    fused = kinds != "none"
    assert abs(fused.mean() - 0.5) < 0.05
    assert abs((kinds[fused] == "checker").mean() - 0.25) < 0.05
    assert abs(noisy[fused].mean() - 0.3) < 0.05
    assert not noisy[~fused].any()
    for d in draws:
        if d.kind == "none":
            assert d.mask.min() == 1.0
        elif d.kind == "free":
            assert 0.01 <= d.mask.mean() <= 0.95


def test_checkerboard_cells_and_phase():
    rng = np.random.default_rng(1)
    cfg = FusionConfig(p_fuse=1.0, p_checker=1.0)
    for _ in range(30):
        d = sample_fusion_mask(rng, (128, 128), cfg)
        assert d.kind == "checker"
        row = d.mask[0]
        runs = np.diff(np.flatnonzero(np.diff(row) != 0))
        if runs.size:  # interior run lengths are the cell size, within 2..64
            assert runs.min() == runs.max() and 2 <= runs[0] <= 64
    m = checkerboard_mask((8, 8), 2, (1, 0))
    assert m[0, 0] == 0 and m[1, 0] == 1 and m[2, 0] == 1 and m[3, 0] == 0 and m[0, 2] == 1 and m[1, 2] == 0
    torch.testing.assert_close(torch.from_numpy(checkerboard_mask((8, 8), 4, invert=True)), 1 - torch.from_numpy(
        checkerboard_mask((8, 8), 4)))  # fmt: skip


def test_face_regions_follow_landmarks():
    """Fusion training draws its face regions with the editor's one geometry (frgd.faces.align.face_region_mask)."""
    for region in FACE_REGIONS:
        m = face_region_mask((128, 128), TEMPLATE_128, region, feather=0.0)
        assert 0.005 < m.mean() < 0.9, region
    le = face_region_mask(128, TEMPLATE_128, "left_eye", feather=0.0)
    x, y = TEMPLATE_128[0].round().astype(int)
    assert le[y, x] == 1 and le[y, 127 - x] == 0
    inside = face_region_mask(128, TEMPLATE_128, "face", feather=0.0)
    outside = face_region_mask(128, TEMPLATE_128, "outside_face", feather=0.0)
    np.testing.assert_array_equal(inside + outside, np.ones((128, 128), np.float32))
    big = face_region_mask(128, TEMPLATE_128, "mouth", feather=0.0, scale=1.4)
    assert big.sum() > face_region_mask(128, TEMPLATE_128, "mouth", feather=0.0).sum() * 1.5
    with pytest.raises(InputError):
        face_region_mask(128, TEMPLATE_128, "ears")


def test_build_cond_layout():
    g = torch.Generator().manual_seed(0)
    deg = torch.rand(2, 3, 8, 8, generator=g)
    known = torch.rand(2, 3, 32, 32, generator=g)
    mask = (torch.rand(2, 1, 32, 32, generator=g) > 0.5).float()
    cond = build_cond(deg, mask, known, value_range="[0,1]")
    assert cond.shape == (2, 7, 32, 32)
    up = torch.nn.functional.interpolate(deg * 2 - 1, size=(32, 32), mode="bicubic", align_corners=False)
    torch.testing.assert_close(cond[:, 0:3], up.clamp(-1, 1))
    torch.testing.assert_close(cond[:, 3:4], mask)
    assert (cond[:, 4:7][mask.expand(-1, 3, -1, -1) == 1] == 0).all()  # zeros where generating
    keep = mask.expand(-1, 3, -1, -1) == 0
    torch.testing.assert_close(cond[:, 4:7][keep], (known * 2 - 1)[keep])
    plain = build_cond(deg * 2 - 1, size=(32, 32))  # plain restoration: mask ones, no known content
    assert (plain[:, 3] == 1).all() and (plain[:, 4:7] == 0).all()


def test_loss_weights_and_seam():
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    band = seam_band(mask, 2)
    assert band[0, 0, 8, 8] == 0 and band[0, 0, 0, 0] == 0 and band[0, 0, 4, 8] == 1 and band[0, 0, 2, 8] == 1
    cfg = FusionConfig(w_gen=2.0, w_keep=1.0, w_seam=1.0, seam_px=2)
    w = fusion_loss_weights(mask, torch.tensor([False, True]), cfg)
    torch.testing.assert_close(w.mean(dim=(1, 2, 3)), torch.ones(2))
    assert w[0, 0, 8, 8] > w[0, 0, 0, 0]  # generate region weighs more than keep (w_gen = 2)
    assert w[0, 0, 4, 8] > w[0, 0, 8, 8]  # seam emphasis
    assert w[1, 0, 4, 8] == w[1, 0, 8, 8]  # no seam band for checkerboards


# ------------------------------------------------------------------------------------------------- datasets


def _fake_faces128(root: Path) -> None:
    """A tiny faces128-shaped folder made of synthetic images (never research data)."""
    syn = SyntheticFaces(n_items=12, n_identities=5, cfg=FacesDataConfig(size=128))
    rows = []
    counts = {0: 3, 1: 2, 2: 1, 3: 2, 4: 1}  # identities 3 and 4 are val
    for ident, n in counts.items():
        split = "val" if ident >= 3 else "train"
        for k in range(n):
            rel = f"{split}/id{ident}_{k}.jpg"
            (root / split).mkdir(parents=True, exist_ok=True)
            img = syn.render(ident, np.random.default_rng([ident, k]))
            cv2.imwrite(str(root / rel), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            lm = " ".join(f"{v:.1f}" for v in TEMPLATE_128.reshape(-1))
            rows.append({"file": rel, "split": split, "identity": f"syn:{ident}", "lm": lm})
    write_labels(root, rows)


def test_folder_and_shards_give_identical_items(tmp_path):
    root = tmp_path / "faces"
    _fake_faces128(root)
    ms = _make_shards_module()
    index = ms.pack(root, tmp_path / "shards", ["train", "val"], max_mib=0.012)
    assert index["count"] == 9 and len(index["shards"]) >= 2  # the size cap splits them
    assert all((tmp_path / "shards" / n).stat().st_size <= 0.012 * 2**20 for n in index["shards"])
    cfg = FacesDataConfig(size=32, seed=5)
    folder = FacesDataset(root, "train", cfg)
    shards = FacesDataset(tmp_path / "shards", "train", cfg)
    assert len(folder) == len(shards) == 6
    for i in range(len(folder)):
        a, b = folder[(i, 2)], shards[(i, 2)]
        assert a.keys() == b.keys()
        for k in a:
            if torch.is_tensor(a[k]):
                torch.testing.assert_close(a[k], b[k])
            else:
                assert a[k] == b[k]
    item = folder[(0, 0)]
    assert item["target"].shape == (3, 32, 32) and item["degraded"].shape == (3, 32, 32)
    assert item["mask"].shape == (1, 32, 32) and item["reference"].shape == (3, 128, 128)
    # an identity with other photos gets one of them; a single-photo identity an augmented copy
    by_file = {r.file: i for i, r in enumerate(folder.records)}
    assert folder[(by_file["train/id0_0.jpg"], 0)]["ref_is_other"]
    assert not folder[(by_file["train/id2_0.jpg"], 0)]["ref_is_other"]
    # deterministic per (index, epoch), different across epochs
    torch.testing.assert_close(folder[(1, 3)]["degraded"], folder[(1, 3)]["degraded"])
    assert not torch.equal(folder[(1, 3)]["degraded"], folder[(1, 4)]["degraded"])
    val = FacesDataset(root, "val", cfg)
    assert val.identity_names.isdisjoint(folder.identity_names) and len(val) == 3


def test_val_identities_never_train(tmp_path):
    root = tmp_path / "faces"
    _fake_faces128(root)
    text = (root / "labels.csv").read_text().replace("val/id3_0.jpg,val,syn:3", "val/id3_0.jpg,val,syn:0")
    (root / "labels.csv").write_text(text)
    with pytest.raises(AssertionError, match="val identities appear in train"):
        FacesDataset(root, "train")


def test_precomputed_embeddings(tmp_path):
    from frgd.identity import IdentityEncoder

    root = tmp_path / "faces"
    _fake_faces128(root)
    ms = _make_shards_module()
    ms.pack(root, tmp_path / "shards", ["train", "val"])
    enc = IdentityEncoder.tiny_random(0)
    path = ms.compute_embeddings(tmp_path / "shards", enc, n_aug=2, batch=4)
    z = np.load(path)
    assert z["emb"].shape == (9, enc.embed(torch.rand(1, 3, 128, 128)).shape[1])
    single = [i for i, f in enumerate(z["files"]) if f in ("train/id2_0.jpg", "val/id4_0.jpg")]
    assert np.abs(z["aug_emb"][single]).sum(axis=-1).min() > 0
    ds = FacesDataset(tmp_path / "shards", "train", FacesDataConfig(size=16), embeddings=path)
    files = [r.file for r in ds.records]
    it = ds[(files.index("train/id0_1.jpg"), 0)]
    assert "reference" not in it and it["identity"].shape == (z["emb"].shape[1],)
    others = [z["emb"][list(z["files"]).index(f)] for f in ("train/id0_0.jpg", "train/id0_2.jpg")]
    assert any(np.allclose(it["identity"].numpy(), o) for o in others)
    it = ds[(files.index("train/id2_0.jpg"), 0)]
    assert any(np.allclose(it["identity"].numpy(), a) for a in z["aug_emb"][files.index("train/id2_0.jpg")])
    batch = collate([ds[(i, 0)] for i in range(3)])
    assert batch["identity"].shape == (3, z["emb"].shape[1]) and batch["fusion_noisy"].dtype == torch.bool


def test_augment_reference_is_small_change():
    syn = SyntheticFaces(n_items=1, n_identities=1, cfg=FacesDataConfig(size=64))
    img = syn.render(0, np.random.default_rng(0))
    a = augment_reference(img, np.random.default_rng(1))
    b = augment_reference(img, np.random.default_rng(1))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert 0 < np.abs(a.astype(int) - img.astype(int)).mean() < 60


def test_synthetic_faces_items():
    ds = SyntheticFaces(n_items=8, n_identities=4, cfg=FacesDataConfig(size=16))
    a, b = ds[(5, 0)], ds[(5, 0)]
    torch.testing.assert_close(a["degraded"], b["degraded"])
    assert a["target"].shape == (3, 16, 16) and a["identity"].shape == (128,)
    torch.testing.assert_close(ds[(1, 0)]["identity"], ds[(5, 0)]["identity"])  # same synthetic identity


def test_epoch_sampler_resume_and_sharding():
    full = EpochSampler(10, 2, seed=4)
    it = iter(full)
    stream = [next(it) for _ in range(2 * 12)]  # 12 batches: 2.4 epochs of 5 batches
    assert sorted(i for i, e in stream[:10]) == list(range(10)) and all(e == 0 for _, e in stream[:10])
    assert all(e == 1 for _, e in stream[10:20])
    resumed = iter(EpochSampler(10, 2, seed=4, position=7))
    assert [next(resumed) for _ in range(10)] == stream[14:24]
    # two processes of batch 1 see disjoint halves of each global batch of 2; together the same order
    r0, r1 = (
        iter(EpochSampler(10, 1, seed=4, process_index=0, num_processes=2)),
        iter(EpochSampler(10, 1, seed=4, process_index=1, num_processes=2)),
    )
    merged = [x for _ in range(5) for x in (next(r0), next(r1))]
    assert merged == stream[:10]


@pytest.mark.shared
def test_real_faces128_items():
    root = shared_path("data", "faces128")
    ds = FacesDataset(root, "train", FacesDataConfig(size=64, max_items=60))
    val = FacesDataset(root, "val", FacesDataConfig(size=64, max_items=10))
    assert val.identity_names.isdisjoint(ds.identity_names)
    item = ds[(0, 0)]
    assert item["target"].shape == (3, 64, 64) and item["reference"].shape == (3, 128, 128)
    assert float(item["target"].std()) > 0.05


def test_training_degradations_in_random_order(tmp_path):
    root = tmp_path / "faces"
    _fake_faces128(root)
    assert FacesDataset(root, "train", FacesDataConfig(size=32)).deg_cfg.shuffle_order  # README: "in random order"
    assert SyntheticFaces(4, 2, FacesDataConfig(size=16)).deg_cfg.shuffle_order
    own = FacesDataConfig(size=32, degradation={"shuffle_order": False, "scale_range": [2, 4]})
    ds = FacesDataset(root, "train", own)
    assert not ds.deg_cfg.shuffle_order and ds.deg_cfg.scale_range == (2.0, 4.0)
    with pytest.raises(InputError, match="unknown degradation config keys"):
        FacesDataset(root, "train", FacesDataConfig(degradation={"scales": [2, 4]}))
