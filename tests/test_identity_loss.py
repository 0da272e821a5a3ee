"""The rounds' identity loss and its identity student (oracles for the algebra, the student, CPU training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_path
from test_frgd_prior import _fake_faces

from frgd.archs.identity_student_arch import IdentityStudent
from frgd.diffusion.model import make_train_scheduler
from frgd.diffusion.training import train_identity_student as tis
from frgd.diffusion.training.identity_loss import (
    IdentityLossConfig,
    clean_estimate,
    flops_per_image,
    identity_loss,
    load_student,
    save_student,
    student_record,
)
from frgd.errors import InputError


def _faces(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 128, 128, generator=torch.Generator().manual_seed(seed))


def _tiny_student(seed: int = 0) -> IdentityStudent:
    torch.manual_seed(seed)
    return IdentityStudent(widths=(8, 12), depth=2, head=4, dim=16, input_size=32).eval()


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_the_clean_estimate_of_the_true_prediction_is_the_true_face(prediction_type):
    """Oracle: with the exact target the scheduler trains on (v or eps), the estimate is x0 at every timestep."""
    sched = make_train_scheduler({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
                                 prediction_type=prediction_type)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(6, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 200, 500, 800, 999])
    x_t = sched.add_noise(x0, noise, t)
    pred = sched.get_velocity(x0, noise, t) if prediction_type == "v_prediction" else noise
    atol = 2e-4 if prediction_type == "v_prediction" else 5e-2  # eps divides by sqrt(a_t), tiny at t = 999
    torch.testing.assert_close(clean_estimate(sched.alphas_cumprod, x_t, t, pred, prediction_type), x0, atol=atol,
                               rtol=0)  # fmt: skip
    with pytest.raises(InputError):
        clean_estimate(sched.alphas_cumprod, x_t, t, pred, "sample")


def test_the_loss_is_zero_for_the_true_face_and_trains_the_estimate_only():
    student = _tiny_student()
    x0 = _faces(4) * 2 - 1
    active = torch.tensor([True, True, False, True])
    assert torch.allclose(identity_loss(student, x0, x0, active), torch.zeros(4), atol=1e-6)
    x0_hat = (_faces(4, seed=5) * 2 - 1).requires_grad_(True)
    target = x0.clone().requires_grad_(True)
    loss = identity_loss(student, x0_hat, target, active)
    assert (loss[active] > 0).all() and loss[2] == 0
    loss.sum().backward()
    assert target.grad is None  # the true face is the target, not trained
    per_sample = x0_hat.grad.abs().flatten(1).sum(1)
    assert (per_sample[active] > 0).all() and per_sample[2] == 0  # an inactive sample gets no gradient


def test_one_step_against_the_loss_brings_the_estimate_to_the_person():
    """The gradient points the right way: a small step along it lowers the loss of every active sample."""
    student = _tiny_student()
    student.requires_grad_(False)
    x0 = _faces(3) * 2 - 1
    x = (_faces(3, seed=9) * 2 - 1).requires_grad_(True)
    active = torch.ones(3, dtype=torch.bool)
    before = identity_loss(student, x, x0, active)
    before.sum().backward()
    with torch.no_grad():
        after = identity_loss(student, x - 0.5 * x.grad / x.grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1), x0, active)
    assert (after < before.detach()).all()


def test_student_descriptors_are_unit_resized_and_independent_of_the_batch():
    net = IdentityStudent()
    net.eval()
    x = _faces(3)
    with torch.no_grad():
        d = net(x)
        alone = net(x[1:2])
        small = net(torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True))
    assert d.shape == (3, 128)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(alone[0], d[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(small, d, atol=1e-5, rtol=0)  # the same antialiased resize inside
    with pytest.raises(ValueError):
        net(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError):
        IdentityStudent(widths=(8, 12, 16), input_size=36)


def test_save_load_round_trip_is_frozen_and_records(tmp_path):
    net = _tiny_student()
    with torch.no_grad():  # non-trivial batch-norm statistics
        net.stem[0][1].running_mean.uniform_(-0.2, 0.2)
    d = save_student(net, tmp_path / "student", {"training": {"val": {"auc_student": 0.9}}})
    loaded = load_student(d)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = _faces(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), atol=2e-3, rtol=0)  # float16 weights
    rec = student_record(IdentityLossConfig(weight=0.1), loaded)
    assert rec["weight"] == 0.1 and rec["student"]["validation"] == {"auc_student": 0.9}
    assert rec["student"]["params"] == sum(p.numel() for p in net.parameters())
    assert student_record(IdentityLossConfig(), None) == {"weight": 0.0, "t_max": 1000}
    cfg = json.loads((d / "config.json").read_text())
    cfg["arch"] = "PriorShareNet"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="architecture"):
        load_student(d)


def test_the_config_is_off_by_default_and_checked():
    assert not IdentityLossConfig.from_dict({}).on
    assert IdentityLossConfig.from_dict({"weight": 0.2, "t_max": 400}).on
    for bad in ({"weight": -1}, {"weight": float("nan")}, {"t_max": 0}, {"t_max": 1001}, {"t_max": 2.5},
                {"wieght": 1}):  # fmt: skip
        with pytest.raises(InputError):
            IdentityLossConfig.from_dict(bad)


def test_roc_auc_against_counting_pairs():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 50).round(1)  # rounded: ties on purpose
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert tis.roc_auc(pos, neg) == pytest.approx(brute)
    assert tis.roc_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert tis.roc_auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert tis.roc_auc(np.array([1.0]), np.array([1.0])) == 0.5


def test_verification_pairs_are_same_and_different_people():
    ident = np.array([0, 0, 1, 1, 1, 2, 3])
    pos, neg = tis.verification_pairs(ident, seed=1)
    assert len(pos) == 1 + 3 and len(neg) == len(pos)
    assert (ident[pos[:, 0]] == ident[pos[:, 1]]).all() and (ident[neg[:, 0]] != ident[neg[:, 1]]).all()


def test_perturb_is_seeded_in_range_and_blur_is_a_delta_at_zero():
    x = _faces(4)
    a = tis.perturb(x, torch.Generator().manual_seed(3))
    b = tis.perturb(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    torch.testing.assert_close(tis.gaussian_blur(x, torch.zeros(4)), x)
    blurred = tis.gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0, 0.0]))
    torch.testing.assert_close(blurred[[0, 3]], x[[0, 3]])
    torch.testing.assert_close(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=5e-3, rtol=0)  # kernels sum to 1
    assert blurred[2].std() < blurred[1].std() < x[1].std()


def _with_embeddings(root, dim: int = 16):
    """Give a fake faces folder the precomputed descriptors file (one random unit vector per identity + jitter)."""
    from frgd.diffusion.training.data import read_labels

    recs = read_labels(root)
    rng = np.random.default_rng(0)
    base = {r.identity: rng.normal(size=dim) for r in recs}
    emb = np.stack([base[r.identity] + 0.1 * rng.normal(size=dim) for r in recs])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.savez(root / tis.EMBEDDINGS_FILE, files=np.array([r.file for r in recs]), emb=emb.astype(np.float16),
             aug_emb=np.zeros((len(recs), 2, dim), np.float16), backend=np.array("dlib"))  # fmt: skip
    return root


def test_training_round_trip_on_cpu(tmp_path):
    root = _with_embeddings(_fake_faces(tmp_path / "faces"))
    run = tmp_path / "run"
    argv = ["train", "--faces", str(root), "--run", str(run), "--widths", "8", "12", "--head", "4",
            "--input-size", "32", "--batch", "4", "--steps", "4", "--time-budget-min", "5", "--val-every", "2",
            "--log-every", "2", "--threads", "1"]  # fmt: skip
    assert tis.main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 4 and state["images"] == 16 and len(state["val_curve"]) == 2
    v = state["val"]
    assert v["faces"] == 8 and v["pairs"] == 4 and v["auc_dlib"] == 1.0  # 4 people, 2 photos each, 16-d descriptors
    assert all(-1 <= v[k] <= 1 for k in ("cos_clean", "cos_blur", "cos_x4")) and 0 <= v["auc_student"] <= 1
    out = tmp_path / "exported"
    assert tis.main(["export", "--run", str(run), "--out", str(out)]) == 0
    net = load_student(out)
    assert net.config()["dim"] == 16 and net.validation == v
    _with_embeddings_missing_one(root)
    with pytest.raises(InputError, match="no descriptor"):
        tis.main(argv)


def _with_embeddings_missing_one(root):
    _with_embeddings(root)
    with np.load(root / tis.EMBEDDINGS_FILE) as z:
        d = {k: z[k] for k in z.files}
    np.savez(root / tis.EMBEDDINGS_FILE, **{k: (v[1:] if v.ndim and k != "backend" else v) for k, v in d.items()})


def test_the_shipped_student_tells_people_apart_on_unseen_faces():
    """The shipped weights on faces128 val (identities never trained on): the figures recorded at export hold."""
    root = shared_path("data", "faces128")
    net = load_student()
    faces, emb, ident = tis.load_split(root, "val", 300)
    pos, neg = tis.verification_pairs(ident)
    d = tis.descriptors(net, tis.to_tensor(faces))
    sim = lambda p: (d[p[:, 0]] * d[p[:, 1]]).sum(1)  # noqa: E731
    assert tis.roc_auc(sim(pos), sim(neg)) > 0.8
    assert net.validation["auc_student"] > 0.8


def test_the_loss_costs_three_student_forwards_per_image():
    """Oracle for the round's MFU share: with the student frozen, the backward computes input gradients only, whose
    FLOPs equal the forward's (convolutions and the linear head), so the loss costs exactly three forwards (the true
    face, the estimate, its backward); a student whose weights also took gradients would cost more."""
    from torch.utils.flop_counter import FlopCounterMode

    student = _tiny_student().requires_grad_(False)
    counter = FlopCounterMode(display=False)
    with counter:
        student(_faces(2))
    forward = counter.get_total_flops() / 2
    assert forward > 0 and flops_per_image(student) == 3 * forward
    assert flops_per_image(student.requires_grad_(True)) > 3 * forward
