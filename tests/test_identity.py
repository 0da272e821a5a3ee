"""Identity encoder: dlib format reader, port, chip geometry, API, gradients, cache, facenet, judge, CLI."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch

from frgd.archs.dlib_resnet_arch import DlibFaceResNet, add_prev
from frgd.errors import InputError, MissingWeightsError
from frgd.identity import IdentityEncoder, ReferenceEmbeddingCache, get_identity_encoder, similarity
from frgd.identity import chips as C
from frgd.identity.dlib_format import _Reader, _write_float, _write_int, metric_resnet_state_dict, read_dlib_net
from frgd.identity.encoder import DlibIdentityEncoder, dlib_weights_file
from tests.conftest import shared_path

# ------------------------------------------------------------------------------------------------------ helpers


def _dat_or_skip():
    try:
        return dlib_weights_file()
    except MissingWeightsError as err:
        pytest.skip(str(err))


def _dlib_or_skip():
    return pytest.importorskip("dlib", reason="dlib-bin (dev extra) not installed")


@pytest.fixture(scope="module")
def tiny() -> IdentityEncoder:
    return IdentityEncoder.tiny_random(0)


@pytest.fixture(scope="module")
def real() -> DlibIdentityEncoder:
    _dat_or_skip()
    return get_identity_encoder("dlib")


def _val_faces(n_ids: int, per_id: int) -> tuple[torch.Tensor, list[str]]:
    root = shared_path("data", "faces128")
    by_id: dict[str, list[str]] = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == "val":
                by_id.setdefault(row["identity"], []).append(row["file"])
    ids = sorted(i for i, fs in by_id.items() if len(fs) >= per_id)[:n_ids]
    imgs, names = [], []
    for i in ids:
        for fn in sorted(by_id[i])[:per_id]:
            rgb = cv2.cvtColor(cv2.imread(str(root / fn)), cv2.COLOR_BGR2RGB)
            imgs.append(torch.from_numpy(rgb).permute(2, 0, 1))
            names.append(i)
    return torch.stack(imgs).float() / 255.0, names


# --------------------------------------------------------------------------------------------- dlib file format


@pytest.mark.parametrize("v", [0, 1, -1, 255, 256, -300, 2**31 - 1, -(2**40)])
def test_dlib_int_roundtrip(v):
    r = _Reader(_write_int(v))
    assert r.int() == v and r.pos == len(r.d)


@pytest.mark.parametrize("x", [0.0, 1.0, 0.04, 0.6, -122.782, 1e-8])
def test_dlib_float_roundtrip(x):
    assert _Reader(_write_float(x) + b"").float() == pytest.approx(x, rel=1e-15, abs=0)


def test_dlib_known_encodings():
    # bytes from the released model: loss margin 0.04 and threshold 0.6, avg red 122.782 as dlib wrote them
    assert _Reader(bytes.fromhex("030ad7a3811c")).float() == pytest.approx(0.04, rel=1e-6)
    assert _Reader(bytes.fromhex("039a99998118")).float() == pytest.approx(0.6, rel=1e-6)
    assert _Reader(bytes.fromhex("036290f58111")).float() == pytest.approx(122.782, rel=1e-6)


def test_read_released_model_structure():
    net = read_dlib_net(_dat_or_skip())
    kinds = [lay.kind for lay in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert kinds[-2:] == ["avg_pool", "fc"] and net.input.attrs["nr"] == 150
    assert net.loss.attrs["distance_threshold"] == pytest.approx(0.6, rel=1e-6)
    assert net.wrapper_versions.count(1) == 14 + 2 * 4  # tag1 per block, tag2 + skip1 per down block (4)
    cfg, sd = metric_resnet_state_dict(net)
    assert cfg["stages"] == [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]
    assert cfg["avg_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    n = sum(v.size for v in sd.values())
    assert n == sum(p.numel() for p in DlibFaceResNet().parameters())


# ------------------------------------------------------------------------------------------------- architecture


def test_add_prev_zero_extends_top_left():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 10.0)
    out = add_prev(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(11).all() and out[0, 0, 3, :].eq(10).all() and out[0, 0, :, 3].eq(10).all()
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3, :].eq(0).all()


def test_dlib_resnet_shapes():
    net = DlibFaceResNet()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 150, 150)).shape == (1, 128)


# ------------------------------------------------------------------------------------------------ chip geometry


def test_dlib_chip_affine_maps_template_onto_landmarks():
    rng = np.random.default_rng(0)
    ang, sc, t = 0.3, 1.7, np.array([40.0, 25.0])
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    chip_pts = 150 * (0.25 + C.DLIB_5PT_TEMPLATE) / 1.5
    lm = chip_pts @ (sc * rot).T + t + rng.normal(0, 0, (5, 2))
    m = C.dlib_chip_affine(lm)
    # dlib samples width (size*scale - 1) over size-1 pixel steps around T(size/2)
    step = (150 * sc - 1) / 149
    assert np.allclose(m[:, :2], step * rot, atol=1e-9)
    centre = m[:, :2] @ np.array([74.5, 74.5]) + m[:, 2]
    assert np.allclose(centre, (sc * rot) @ np.array([75.0, 75.0]) + t, atol=1e-9)


def test_chip_geometry_matches_dlib_chip_details():
    dlib = _dlib_or_skip()
    rng = np.random.default_rng(1)
    for _ in range(5):
        ang, sc = rng.uniform(-0.5, 0.5), rng.uniform(40, 200)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        lm = np.round((C.DLIB_5PT_TEMPLATE - 0.5) @ rot.T * sc + rng.uniform(100, 300, 2) + rng.normal(0, 3, (5, 2)))
        det = dlib.full_object_detection(dlib.rectangle(0, 0, 9, 9), [dlib.point(int(x), int(y)) for x, y in lm])
        for size, pad in ((150, 0.25), (200, 0.1)):
            cd = dlib.get_face_chip_details(det, size, pad)
            r = cd.rect
            s = (r.right() - r.left()) / (size - 1)
            rd = np.array([[math.cos(cd.angle), -math.sin(cd.angle)], [math.sin(cd.angle), math.cos(cd.angle)]])
            want = np.zeros((2, 3))
            want[:, :2] = s * rd
            want[:, 2] = [(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2] - want[:, :2] @ np.array(
                [(size - 1) / 2] * 2
            )
            assert np.allclose(C.dlib_chip_affine(lm, size, pad), want, atol=1e-6)


def test_chip_pixels_match_dlib_get_face_chip():
    dlib = _dlib_or_skip()
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.integers(0, 256, (220, 260, 3), dtype=np.uint8), (0, 0), 3)
    lm = np.round((C.DLIB_5PT_TEMPLATE - 0.5) * 110 + [130, 110] + rng.normal(0, 2, (5, 2)))
    det = dlib.full_object_detection(dlib.rectangle(0, 0, 9, 9), [dlib.point(int(x), int(y)) for x, y in lm])
    ref = dlib.get_face_chip(img, det, size=150, padding=0.25).astype(np.float64)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    ours = C.warp_chips(t, C.dlib_chip_affine(lm), 150, padding_mode="zeros", antialias=False)
    ours = ours[0].permute(1, 2, 0).double().numpy() * 255.0
    inside = ref.sum(-1) > 0
    # dlib truncates the bilinear value to uint8; we keep floats
    assert np.abs(np.floor(ours + 1e-3) - ref)[inside].mean() < 0.05
    assert np.abs(ours - ref)[inside].max() < 1.01


def test_crop_affine_per_size_consistent(tiny):
    # the same face at any crop size maps the chip onto (nearly) the same template-frame region
    ref = C.dlib_chip_affine(C.FFHQ_DLIB_LANDMARKS_512)
    for size in (64, 128, 256, 512):
        m = C.crop_to_dlib_chip_affine(size)
        assert np.allclose(tiny.chip_affine(size), m)
        u = C.compose(np.linalg.inv(np.vstack([C.template_frame_to_crop(size), [0, 0, 1]]))[:2], m)
        corners = np.array([[0, 0, 1], [149, 149, 1]])
        assert np.abs(corners @ u.T - corners @ ref.T).max() < 512 / size * 1.0  # within ~1 crop pixel
    lm128 = C.FFHQ_DLIB_LANDMARKS_512 / 4.0 + C.crop_offset(128)
    assert np.allclose(lm128, C.FFHQ_DLIB_LANDMARKS_128)


def test_arcface_affine_maps_templates():
    from frgd.faces.align import template

    m = C.crop_to_arcface_affine(128)
    got = C.ARCFACE_112 @ m[:, :2].T + m[:, 2]
    want = template(128) + C.crop_offset(128)
    assert np.abs(got - want).max() < 2.0  # the two templates differ by a few px (not a similarity)


# ---------------------------------------------------------------------------------------------------------- API


def test_embed_api_tiny(tiny):
    x = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    e = tiny.embed(x)
    assert e.shape == (3, tiny.embedding_dim) == (3, 128) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(tiny.embed(x[1:2]), e[1:2], atol=1e-5)  # batched == single
    assert torch.allclose(IdentityEncoder.tiny_random(0).embed(x), e)  # seeded
    assert not torch.allclose(IdentityEncoder.tiny_random(1).embed(x), e)
    assert tiny.input_template == "ffhq" and tiny.backend == "dlib"
    assert not any(p.requires_grad for p in tiny.parameters())
    tiny.train()
    assert not tiny.net.training


def test_embed_any_crop_size(tiny):
    img = cv2.GaussianBlur(np.random.default_rng(0).random((512, 512, 3)).astype(np.float32), (0, 0), 6)
    x512 = torch.from_numpy(img).permute(2, 0, 1)[None]
    x128 = torch.from_numpy(cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    assert similarity(tiny.embed(x512), tiny.embed(x128)).item() > 0.98


def test_embed_rejects_bad_input(tiny):
    with pytest.raises(InputError):
        tiny.embed(torch.rand(1, 3, 128, 100))
    with pytest.raises(InputError):
        tiny.embed(torch.rand(3, 128, 128))


def test_similarity_shapes():
    a = torch.randn(4, 8)
    assert similarity(a, a).allclose(torch.ones(4), atol=1e-6)
    assert similarity(a, a[0]).shape == (4,)
    assert similarity(a, -a).allclose(-torch.ones(4), atol=1e-6)
    with pytest.raises(InputError):
        similarity(a, torch.randn(3, 8))


def test_bf16_autocast_close(tiny):
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eb = tiny.embed(x)
    assert eb.dtype == torch.float32
    assert similarity(eb, tiny.embed(x)).min().item() > 0.98


def test_embed_image_matches_aligned_crop(tiny):
    from frgd.faces.align import template

    rng = np.random.default_rng(4)
    crop = cv2.GaussianBlur(rng.random((128, 128, 3)).astype(np.float32), (0, 0), 2)
    # place the crop into a bigger photo with a similarity (scale 2, 15 degrees), then undo it with embed_image
    a = cv2.getRotationMatrix2D((64, 64), 15, 2.0)
    a[:, 2] += [150, 120]
    photo = cv2.warpAffine(crop, a, (420, 400), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    lm = (template(128) + C.crop_offset(128)) @ a[:, :2].T + a[:, 2]
    e_img = tiny.embed_image(torch.from_numpy(photo).permute(2, 0, 1), lm)
    e_crop = tiny.embed(torch.from_numpy(crop).permute(2, 0, 1)[None])
    assert similarity(e_img, e_crop).item() > 0.99
    with pytest.raises(InputError):
        tiny.embed_image(torch.from_numpy(photo).permute(2, 0, 1), lm[:4])


def test_embed_image_consistent_with_align_face(tiny):
    from frgd.faces.align import align_face, template

    rng = np.random.default_rng(6)
    photo = cv2.GaussianBlur(rng.random((300, 340, 3)).astype(np.float32), (0, 0), 4)
    lm = template(128) * 1.6 + [60, 40] + rng.normal(0, 1.5, (5, 2))  # noisy, not an exact similarity
    crop = align_face(photo, lm, 128).image
    e_crop = tiny.embed(torch.from_numpy(crop).permute(2, 0, 1)[None])
    e_img = tiny.embed_image(torch.from_numpy(photo).permute(2, 0, 1), lm)
    assert similarity(e_img, e_crop).item() > 0.99


@pytest.mark.shared
@pytest.mark.slow
def test_reference_embedding_of_photo(tiny, tmp_path):
    from frgd.identity.cache import reference_embedding

    faces, _ = _val_faces(1, 1)
    crop = (faces[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    canvas = cv2.copyMakeBorder(cv2.resize(crop, (256, 256)), 60, 60, 80, 80, cv2.BORDER_REFLECT)
    f = tmp_path / "ref.png"
    cv2.imwrite(str(f), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    e = reference_embedding(f, tiny)
    assert e.shape == (128,)
    assert similarity(e[None], tiny.embed(faces[:1])).item() > 0.95
    cache = ReferenceEmbeddingCache("tiny-dlib", root=tmp_path / "c")
    assert torch.allclose(cache.get(f, encoder=tiny), e, atol=1e-6)


def test_get_identity_encoder_cached_and_errors():
    _dat_or_skip()
    assert get_identity_encoder("dlib") is get_identity_encoder("dlib", "cpu")
    with pytest.raises(InputError):
        get_identity_encoder("arcface")


# ----------------------------------------------------------------------------------------------------- gradients


def test_gradient_ascent_raises_similarity_random_weights(tiny):
    g = torch.Generator().manual_seed(5)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=64, mode="bilinear")
    target = tiny.embed(smooth[1:2]).detach()
    _ascend(tiny, smooth[0:1], target, steps=5, lr=0.03)


@pytest.mark.shared
@pytest.mark.slow
def test_gradient_ascent_raises_similarity_real_face(real):
    faces, names = _val_faces(2, 1)
    assert names[0] != names[1]
    target = real.embed(faces[1:2]).detach()
    _ascend(real, faces[0:1], target, steps=5, lr=0.01)


def _ascend(enc, x0, target, steps, lr):
    delta = torch.zeros_like(x0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    sims = []
    for _ in range(steps):
        sim = similarity(enc.embed((x0 + delta).clamp(0, 1)), target)
        sims.append(sim.item())
        opt.zero_grad()
        (-sim.sum()).backward()
        assert delta.grad is not None and delta.grad.abs().sum() > 0
        opt.step()
    final = similarity(enc.embed((x0 + delta).clamp(0, 1)), target).item()
    assert final > sims[0] + 0.05, (sims, final)


# ------------------------------------------------------------------------------------------------- dlib parity


@pytest.mark.dlib
@pytest.mark.shared
@pytest.mark.slow
def test_parity_with_dlib_bin(real):
    dlib = _dlib_or_skip()
    from frgd.identity.judge import accuracy_at, balanced_pairs

    faces, names = _val_faces(25, 2)  # 50 faces, 25 positive + 25 negative pairs
    assert len(faces) >= 50
    with torch.no_grad():
        chips = real.chips(faces)
    u8 = (chips * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    rec = dlib.face_recognition_model_v1(str(dlib_weights_file()))
    ref = np.stack([np.asarray(rec.compute_face_descriptor(np.ascontiguousarray(c))) for c in u8])
    with torch.no_grad():
        ours = real.net(torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255).numpy()
    assert np.abs(ours - ref).max() <= 1e-3
    pairs = balanced_pairs(names, seed=0)
    same = pairs[:, 2].astype(bool)

    def acc(e):
        return accuracy_at(np.linalg.norm(e[pairs[:, 0]] - e[pairs[:, 1]], axis=1), same, 0.6, higher_is_same=False)

    assert abs(acc(ours) - acc(ref)) <= 0.005
    with torch.no_grad():  # the float path (no uint8 chip) decides like dlib too
        assert abs(acc(real.descriptor(faces).numpy()) - acc(ref)) <= 0.05
    assert acc(ref) > 0.8  # the chip geometry is right: dlib verifies these faces well


# ------------------------------------------------------------------------------------------------------- facenet


def test_facenet_missing_weights_message(monkeypatch, tmp_path):
    from frgd.identity.facenet import FACENET_URL, FacenetIdentityEncoder

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(MissingWeightsError) as ei:
        FacenetIdentityEncoder.from_pretrained()
    assert FACENET_URL in str(ei.value) and "facenet-vggface2" in str(ei.value)


@pytest.fixture(scope="module")
def facenet_random():
    return IdentityEncoder.tiny_random(3, backend="facenet")


def test_facenet_random_same_api(facenet_random):
    enc = facenet_random
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    e = enc.embed(x)
    assert e.shape == (2, 512) and enc.chip_size == 160 and enc.backend == "facenet"
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    m = enc.chip_affine(128)
    corners = np.array([[0, 0, 1], [159, 159, 1]]) @ m.T
    assert (corners > 0).all() and (corners < 127).all()  # the MTCNN-box chip lies inside our 128 crop


@pytest.mark.slow
def test_facenet_loads_checkpoint_file(tmp_path, facenet_random):
    from frgd.identity.facenet import FacenetIdentityEncoder

    src = facenet_random
    sd = {k: v.clone() for k, v in src.net.state_dict().items()}
    sd["logits.weight"] = torch.zeros(8631, 512)  # the release checkpoint carries the classifier
    sd["logits.bias"] = torch.zeros(8631)
    p = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(sd, p)
    enc = FacenetIdentityEncoder.from_pretrained(p)
    x = torch.rand(1, 3, 128, 128)
    assert torch.allclose(enc.embed(x), src.embed(x), atol=1e-5)


# --------------------------------------------------------------------------------------------------------- cache


def test_reference_cache(tmp_path):
    f = tmp_path / "ref.png"
    f.write_bytes(b"not really an image, hashed only")
    calls = []

    def compute(p):
        calls.append(p)
        return torch.arange(4, dtype=torch.float32)

    c = ReferenceEmbeddingCache("dlib", root=tmp_path / "cache")
    assert c.get(f, compute).tolist() == [0, 1, 2, 3]
    assert c.get(f, compute).tolist() == [0, 1, 2, 3] and len(calls) == 1
    c2 = ReferenceEmbeddingCache("dlib", root=tmp_path / "cache")  # from disk, no recompute
    assert c2.get(f, compute).tolist() == [0, 1, 2, 3] and len(calls) == 1
    ReferenceEmbeddingCache("facenet", root=tmp_path / "cache").get(f, compute)
    assert len(calls) == 2  # the backend is part of the key
    f.write_bytes(b"edited")
    c2.get(f, compute)
    assert len(calls) == 3  # new bytes, new key
    with pytest.raises(InputError):
        c.get(tmp_path / "missing.png", compute)


def test_reference_cache_default_root_uses_weights_cache(tmp_path):
    from frgd.weights import cache_dir

    c = ReferenceEmbeddingCache("dlib")
    assert str(c.root).startswith(str(cache_dir()))


# --------------------------------------------------------------------------------------------------------- judge


def test_judge_missing(monkeypatch, tmp_path):
    from frgd.identity.judge import Judge

    monkeypatch.setenv("FRGD_JUDGE", str(tmp_path / "nothing"))
    with pytest.raises(MissingWeightsError, match="FRGD_JUDGE"):
        Judge()


@pytest.mark.shared
def test_judge_verifies_val_faces():
    from frgd.identity.judge import Judge

    shared_path("weights", "judge", "mobilefacenet192.onnx")
    faces, names = _val_faces(4, 2)
    e = Judge().embed(faces)
    assert e.shape == (8, 192) and torch.allclose(e.norm(dim=1), torch.ones(8), atol=1e-5)
    s = e @ e.T
    same = torch.tensor([[a == b for b in names] for a in names]) & ~torch.eye(8, dtype=torch.bool)
    diff = torch.tensor([[a != b for b in names] for a in names])
    assert s[same].mean() > s[diff].mean() + 0.2


def test_verification_helpers():
    from frgd.identity.judge import balanced_pairs, verification_report

    pairs = balanced_pairs(["a", "a", "b", "b", "c"], seed=0)
    assert pairs[:, 2].sum() == 2 and len(pairs) == 4
    scores = np.array([0.9, 0.8, 0.1, 0.2])
    rep = verification_report(scores, pairs[:, 2], True, threshold=0.5)
    assert rep["accuracy_at_threshold"] == 1.0 and rep["accuracy_best_threshold"] == 1.0


# ----------------------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_bench_cli(tmp_path):
    _dat_or_skip()
    from frgd.cli.main import main

    out = tmp_path / "b.json"
    rc = main(["bench", "identity", "--batch-sizes", "1", "--seconds", "0", "--no-backward", "--json-out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {(r["dtype"], r["batch"]) for r in data["results"]} == {("fp32", 1), ("bf16", 1)}
    assert all(r["crops_per_s"] > 0 for r in data["results"])


def test_eval_identity_needs_pairs_of_both_kinds(tmp_path, capsys):
    """One image per identity (or one identity) gives no same- (or different-) person pairs: a one-line user error
    before any image is read, not an internal IndexError after all the embeddings were computed."""
    from frgd.cli.cmd_identity import select_faces
    from frgd.cli.main import main

    rows = ["file,split,identity"] + [f"val/{i}_{k}.jpg,val,id{i}" for i in range(3) for k in range(2)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert len(select_faces(tmp_path, "val", 3, 2)[0]) == 6
    for identities, per_identity in ((3, 1), (1, 2)):
        with pytest.raises(InputError, match="--per-identity must be >= 2"):
            select_faces(tmp_path, "val", identities, per_identity)
    rc = main(["eval", "identity", "--data", str(tmp_path), "--per-identity", "1", "--no-dlib", "--no-judge"])
    err = capsys.readouterr().err
    assert rc == 2 and "--per-identity must be >= 2" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ identity meter
def test_meter_calibration_rates_and_verdicts():
    import numpy as np

    from frgd.identity.meter import MAX_FALSE_ACCEPT, MAX_FALSE_REJECT, calibrate, pair_similarities

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    ids = np.repeat(np.arange(20), 6)
    emb = centres[ids] + 0.6 * rng.normal(size=(len(ids), 16))
    same, diff = pair_similarities(emb, ids)
    assert len(same) == 20 * 15 and len(same) + len(diff) == len(ids) * (len(ids) - 1) // 2
    cal = calibrate(same, diff, "toy", "toy")
    assert cal.false_accept_at_likely <= MAX_FALSE_ACCEPT + 1e-9
    assert cal.false_reject_at_unlikely <= MAX_FALSE_REJECT + 1e-9
    assert cal.unlikely_threshold <= cal.likely_threshold
    assert cal.verdict(cal.likely_threshold) == "likely"
    assert cal.verdict(cal.unlikely_threshold - 1e-6) == "unlikely"
    assert cal.verdict((cal.likely_threshold + cal.unlikely_threshold) / 2) in ("unsure", "likely")


def test_committed_meter_calibration_is_sane():
    from frgd.identity.meter import load_calibrations, read_meter

    cal = load_calibrations()["dlib"]
    assert 0.8 < cal.unlikely_threshold < cal.likely_threshold < 0.99
    assert cal.false_accept_at_likely <= 0.001 and cal.false_reject_at_unlikely <= 0.01
    # the example: a stranger (a child) at 0.887 against the true reference's 0.936
    reading = read_meter([0.936, 0.887], "dlib", independent=False)
    assert reading.verdicts == ["likely", "unlikely"]
    assert "optimistic" in reading.label(0) and reading.as_dict()["independent"] is False


def test_meter_label_from_stored_params():
    from frgd.identity.meter import label_from_params, read_meter

    d = read_meter([0.95, 0.90], "dlib", independent=False).as_dict()
    assert label_from_params(0.95, d).startswith("same person: likely (0.95, dlib, guidance encoder: optimistic")
    assert label_from_params(0.90, d).startswith("same person: unsure")
    assert label_from_params(0.5, {"encoder": "facenet", "independent": True, "calibration": None}).startswith(
        "same person: unsure (0.50, facenet, independent encoder"
    )
