"""The rounds' identity loss: the model's clean estimate should be the same person as the true face.

FRGD is conditioned on the reference's identity embedding, but the diffusion loss alone barely rewards using it: the
model learnt to ignore it (``val.identity_use`` about 0 through round 7; docs/training_rounds.md). This loss rewards
the identity directly. For a training sample with noise level ``t`` the model's prediction gives the clean estimate

    x0_hat = sqrt(a_t) x_t - sqrt(1 - a_t) v        (v-prediction; eps: (x_t - sqrt(1 - a_t) eps) / sqrt(a_t))

and the loss is ``1 - cos(f(x0_hat), f(x0))`` with ``f`` the identity student (:class:`frgd.archs.
identity_student_arch.IdentityStudent`, frozen), weighted by ``weight`` and applied where ``t < t_max`` and where the
reference embedding was given (not dropped for classifier-free guidance: without it the identity is not the model's to
know). By default every timestep counts (``t_max`` 1000): measured at the round-7 weights
(``scripts/measure_identity_loss.py``), the loss is 0.01-0.08 below t = 450, where the input leaves the estimate
little to choose, and 0.17-0.31 above, where the reference already makes a small difference (a wrong person's
reference raises it by 0.006-0.007, 2-3 standard errors): the identity is decided at high noise. Comparing the
student with itself on both sides makes its own errors cancel: the loss is 0 when the estimate is the true face.

The student is distilled from the dlib ResNet on the CPU (:mod:`.train_identity_student`) and ships as the manifest
entry ``frgd-identity-student`` (``config.json`` + float16 ``model.safetensors``, a few hundred KiB, which travels
with a round's upload). It is a training tool only: sampling guidance uses the dlib ResNet, evaluation the judge.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...archs.identity_student_arch import IdentityStudent
from ...errors import InputError

logger = logging.getLogger(__name__)

ARCH = "IdentityStudent"
STUDENT_WEIGHTS = "frgd-identity-student"
"""Manifest name of the shipped identity student."""
_ARCH_KEYS = ("widths", "depth", "head", "dim", "input_size")


def build_student(config: dict[str, Any]) -> IdentityStudent:
    """Rebuild the student from a ``config.json`` dict (training metadata ignored)."""
    from ...weights import build_from_config

    return build_from_config(config, IdentityStudent, ARCH, _ARCH_KEYS, "identity-student")


def load_student(directory: str | Path | None = None, device: torch.device | str = "cpu") -> IdentityStudent:
    """The student (eval, float32, frozen); ``directory`` overrides the installed folder.
    :class:`frgd.errors.MissingWeightsError` when it is not installed."""
    from ... import weights

    d = Path(directory) if directory is not None else weights.weights_path(STUDENT_WEIGHTS)
    net = weights.load_pretrained(d, build_student, device=device).float().eval()
    net.requires_grad_(False)
    net.source = str(d)
    net.validation = weights.load_config(d).get("training", {}).get("val")
    return net


def student_record(cfg: IdentityLossConfig, student: IdentityStudent | None) -> dict[str, Any]:
    """What a round's ``round.json`` says of its identity loss: the settings, and the student's folder, size and own
    validation (``None`` when the loss is off)."""
    rec: dict[str, Any] = {"weight": cfg.weight, "t_max": cfg.t_max}
    if student is not None:
        rec["student"] = {"source": getattr(student, "source", None),
                          "params": sum(p.numel() for p in student.parameters()),
                          "validation": getattr(student, "validation", None)}  # fmt: skip
    return rec


def flops_per_image(student: IdentityStudent, size: int = 128) -> float:
    """FLOPs the loss adds per ``size`` x ``size`` training image: the student's forward on the true face, and its
    forward and backward on the clean estimate (``torch.utils.flop_counter``, on the CPU; the UNet's backward is the
    diffusion loss's). Measured for the shipped student: 0.118 GFLOP, about 0.1 % of the round UNet's 111."""
    from torch.utils.flop_counter import FlopCounterMode

    b = 2
    dev = next(student.parameters()).device
    x0 = torch.rand(b, 3, size, size, device=dev) * 2 - 1
    x0_hat = (torch.rand(b, 3, size, size, device=dev) * 2 - 1).requires_grad_(True)
    counter = FlopCounterMode(display=False)
    with counter:
        identity_loss(student, x0_hat, x0, torch.ones(b, device=dev)).sum().backward()
    return counter.get_total_flops() / b


def save_student(net: IdentityStudent, directory: str | Path, extra: dict[str, Any]) -> Path:
    """Write ``config.json`` (architecture and ``extra``) and ``model.safetensors`` (float16)."""
    from ... import weights

    return weights.save_pretrained(directory, net, {"arch": ARCH, **net.config(), **extra}, dtype=torch.float16)


def clean_estimate(
    alphas_cumprod: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, pred: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The model's estimate of ``x0`` ``(B, C, H, W)`` in [-1, 1] units from ``pred`` at ``x_t``, timesteps ``t``
    ``(B,)``; ``prediction_type`` ``"v_prediction"`` or ``"epsilon"``."""
    a = alphas_cumprod.to(x_t.device)[t].float().view(-1, 1, 1, 1)
    x_t, pred = x_t.float(), pred.float()
    if prediction_type == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * pred
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * pred) / a.sqrt()
    raise InputError(f"unknown prediction type {prediction_type!r}")


def identity_loss(
    student: IdentityStudent, x0_hat: torch.Tensor, x0: torch.Tensor, active: torch.Tensor
) -> torch.Tensor:
    """Per-sample ``(1 - cos(f(x0_hat), f(x0))) * active`` ``(B,)``; ``x0_hat`` and ``x0`` ``(B, 3, H, W)`` in [-1, 1]
    (the gradient flows through ``x0_hat`` only), ``active`` ``(B,)`` bool or float. Every sample goes through the
    student (selecting the active ones would synchronise the GPU each step); the inactive ones count 0."""
    with torch.no_grad():
        target = student(((x0.float() + 1) / 2).clamp(0, 1))
    f = student(((x0_hat.float() + 1) / 2).clamp(0, 1))
    return (1 - F.cosine_similarity(f.float(), target.float(), dim=1)) * active.float()


@dataclass(frozen=True)
class IdentityLossConfig:
    """The ``identity_loss`` section of a round's config (``--set identity_loss.weight=W``); see the module
    docstring. ``weight`` 0 (the default) turns it off; the shipped round preset ``round_frgd128`` turns it on from
    round 8."""

    weight: float = 0.0
    t_max: int = 1000
    student: str | None = None  # weights folder; None: the installed frgd-identity-student

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> IdentityLossConfig:
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown identity_loss keys: {sorted(unknown)}")
        cfg = cls(**d)
        if not (isinstance(cfg.weight, (int, float)) and math.isfinite(cfg.weight) and cfg.weight >= 0):
            raise InputError(f"identity_loss.weight must be a number >= 0, got {cfg.weight!r}")
        if not (isinstance(cfg.t_max, int) and 0 < cfg.t_max <= 1000):
            raise InputError(f"identity_loss.t_max must be an integer in 1..1000, got {cfg.t_max!r}")
        return cfg

    @property
    def on(self) -> bool:
        return self.weight > 0


__all__ = [
    "IdentityLossConfig",
    "STUDENT_WEIGHTS",
    "build_student",
    "clean_estimate",
    "identity_loss",
    "load_student",
    "save_student",
    "student_record",
]
