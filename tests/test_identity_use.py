"""``frgd.eval.identity_use``: the loss with the right, a wrong and no reference embedding, against analytic losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frgd.diffusion.model import make_train_scheduler
from frgd.eval.identity_use import identity_use, other_person

OFFSET = 0.05
"""Every prediction of the oracle model is off by this constant, so the right reference's loss is OFFSET**2."""


class KnowsTheFaces(nn.Module):
    """A v-prediction 'model' that knows the clean faces: a reference embedding ``e_i`` (one-hot ``i``) names face
    ``i``, whose exact ``v`` it predicts from ``x_t`` (plus :data:`OFFSET`); without an identity it predicts as if the
    clean face were 0 (mid-grey). With ``x0_hat`` in place of ``x0`` the prediction is off by
    ``(x0 - x0_hat) / sqrt(1 - abar)``, so every loss is known in closed form."""

    def __init__(self, faces: torch.Tensor, scheduler) -> None:
        super().__init__()
        self.faces = faces  # (N, 3, S, S) in [-1, 1]
        self.abar = scheduler.alphas_cumprod.double()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, cond, identity=None, drop_identity=None):
        a = self.abar[t].view(-1, 1, 1, 1)
        x0_hat = torch.zeros_like(x_t) if identity is None else self.faces[identity.argmax(dim=1)]
        noise_hat = (x_t.double() - a.sqrt() * x0_hat) / (1 - a).sqrt()
        return (a.sqrt() * noise_hat - (1 - a).sqrt() * x0_hat + OFFSET).float()


def test_identity_use_equals_the_closed_form_losses():
    g = np.random.default_rng(0)
    n, size = 5, 32
    gts = [g.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    faces = torch.stack([torch.from_numpy(x).permute(2, 0, 1).double() / 255 * 2 - 1 for x in gts])
    sched = make_train_scheduler()
    model = KnowsTheFaces(faces, sched)
    ref = torch.eye(n, 16)
    names = ["a", "a", "b", "c", "c"]  # face 1's wrong reference is face 2's, not face 0's (the same person)
    res = identity_use(model, sched, gts, ref, identities=names, scales=[4.0], timesteps=[200, 800], batch=2)
    wrong = other_person(names, n)
    assert wrong == [2, 2, 3, 0, 0]
    for row in res["scales"]["x4"]["rows"]:
        s1 = float((1 - sched.alphas_cumprod.double()[row["t"]]).sqrt())

        def loss(x0_hat: torch.Tensor, s1: float = s1) -> torch.Tensor:  # per face
            return (((faces - x0_hat) / s1 + OFFSET) ** 2).mean(dim=(1, 2, 3))

        want = {"ref": loss(faces), "wrong": loss(faces[wrong]), "null": loss(torch.zeros_like(faces))}
        for c, v in want.items():
            assert row[f"mse_{c}"] == pytest.approx(float(v.mean()), rel=1e-4)
        gain = (want["null"] - want["ref"]) / want["null"]
        assert row["gain_vs_null"]["mean"] == pytest.approx(float(gain.mean()), rel=1e-3)
        assert row["gain_vs_null"]["faces_better"] == n and row["gain_vs_wrong"]["faces_better"] == n
        assert row["gain_vs_null"]["se"] == pytest.approx(float(gain.std() / n**0.5), rel=1e-3)


def test_a_model_that_ignores_the_identity_gains_nothing():
    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.3))

        def forward(self, x_t, t, cond, identity=None, drop_identity=None):
            return self.w * x_t + 0.1 * cond[:, :3]

    g = np.random.default_rng(1)
    gts = [g.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    res = identity_use(Blind(), make_train_scheduler(), gts, torch.eye(4, 8), scales=[8.0], timesteps=[500])
    row = res["scales"]["x8"]["rows"][0]
    assert row["mse_ref"] == row["mse_null"] == row["mse_wrong"] > 0
    assert row["gain_vs_null"]["mean"] == 0.0 and row["gain_vs_null"]["faces_better"] == 0


def test_identity_use_refuses_what_it_cannot_measure():
    gts = [np.zeros((32, 32, 3), np.uint8)] * 2
    with pytest.raises(ValueError):
        identity_use(nn.Linear(1, 1), make_train_scheduler(), gts[:1], torch.eye(1, 4))
    with pytest.raises(ValueError):
        other_person(["a", "a"], 2)
    with pytest.raises(ValueError, match="timestep"):
        identity_use(nn.Linear(1, 1), make_train_scheduler(), gts, torch.eye(2, 4), timesteps=[1000])
