"""What the model probes (:mod:`.identity_use`, :mod:`.model_detail`) feed the model: validation faces as training
batches at one timestep, whole-face restoration, one fixed noise draw per timestep and scale.

:func:`probe_inputs` degrades the faces as ``frgd eval faces`` does; :func:`noised_batches` cuts them into batches on
the model's device and noises them to ``t`` with :func:`frgd.diffusion.training.train.make_training_inputs`, so a probe
sees exactly what training sees.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ProbeBatch:
    """Faces ``start .. start + B`` at one timestep: ``x0`` ``(B, 3, S, S)`` in ``[-1, 1]``, ``deg`` the bicubic
    upscale of their degraded inputs ``(B, 3, S, S)`` in ``[0, 1]``, ``noise`` like ``x0``, ``t`` ``(B,)`` long, and
    the training inputs ``x_t``, ``cond`` and ``target`` (``eps`` or ``v``)."""

    start: int
    x0: torch.Tensor
    deg: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    x_t: torch.Tensor
    cond: torch.Tensor
    target: torch.Tensor


def probe_inputs(gts: Sequence[np.ndarray], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0 (N, 3, S, S) in [-1, 1], deg (N, 3, S, S) in [0, 1])`` of ``N`` uint8 faces ``(S, S, 3)``: the faces and
    the bicubic upscale of their degraded inputs (the evaluation's deterministic degradation at ``scale``)."""
    from ..tensor import image_to_tensor
    from .faces import degrade_faces, upscale_faces

    size = int(gts[0].shape[0])
    x0 = torch.cat([image_to_tensor(g) for g in gts]) * 2 - 1
    deg = torch.cat([image_to_tensor(x) for x in upscale_faces(degrade_faces(list(gts), float(scale)), size)])
    return x0, deg


def noised_batches(
    scheduler, x0_all: torch.Tensor, deg_all: torch.Tensor, t_val: int, seed: int, batch: int, device
) -> Iterator[ProbeBatch]:
    """The batches (:class:`ProbeBatch`) of ``x0_all`` / ``deg_all`` (:func:`probe_inputs`) at timestep ``t_val``,
    ``batch`` faces each, on ``device``; the noise of all faces is one draw of a CPU generator seeded ``seed`` (the
    same whatever the batch size or device). :class:`ValueError` for a timestep outside the scheduler's."""
    from ..diffusion.training.train import make_training_inputs

    n_train = int(scheduler.config.num_train_timesteps)
    if not 0 <= int(t_val) < n_train:
        raise ValueError(f"timestep {t_val} outside 0..{n_train - 1}")
    noise_all = torch.randn(x0_all.shape, generator=torch.Generator().manual_seed(int(seed)))
    size = int(x0_all.shape[-1])
    for i in range(0, x0_all.shape[0], batch):
        x0, deg, noise = (a[i : i + batch].to(device) for a in (x0_all, deg_all, noise_all))
        b = x0.shape[0]
        t = torch.full((b,), int(t_val), dtype=torch.long, device=device)
        ones = torch.ones(b, 1, size, size, device=device)
        known = torch.zeros(b, dtype=torch.bool, device=device)
        x_t, cond, target = make_training_inputs(scheduler, x0, deg, ones, known, noise, t)
        yield ProbeBatch(i, x0, deg, noise, t, x_t, cond, target)


__all__ = ["ProbeBatch", "noised_batches", "probe_inputs"]
