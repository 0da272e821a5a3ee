"""Prior-share estimator: how much of FRGD's content target should come from the prior rather than the input.

A degraded face at the content guidance's scale ``y`` ``(B, 3, h, w)`` in [0, 1] and its residual against the FRGD
prior's estimate at that scale ``r = y - p`` -> one logit per face; ``sigmoid(logit)`` is the share ``a`` of the
prior in the content target ``(1 - a) y + a p`` (:mod:`frgd.diffusion.content`). A clean downscale should get
``a`` near 0 (the input's pixels are the truth at that scale), a noisy, blurred or compressed one near 1 (the prior
has removed what the input must not pass on).

Layout: ``depth`` 3x3 convolutions of ``width`` channels (GELU) at the input's own resolution, then per-channel mean
and standard deviation over the face, with ``log2`` of the input's shorter side, into a two-layer head. Any size of at
least 4 px; no normalisation layers, so a face's share does not depend on its batch.

State-dict names: ``body.{2i}.*`` (convolutions), ``head.0.*``, ``head.2.*``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class PriorShareNet(nn.Module):
    """``(y, residual)`` each ``(B, 3, h, w)`` -> logits ``(B,)`` of the prior's share of the content target."""

    def __init__(self, width: int = 24, depth: int = 3, residual_gain: float = 8.0) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be positive, got {width}, {depth}")
        self.width, self.depth, self.residual_gain = int(width), int(depth), float(residual_gain)
        layers: list[nn.Module] = []
        for i in range(self.depth):
            layers += [nn.Conv2d(6 if i == 0 else self.width, self.width, 3, 1, 1), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * self.width + 1, self.width), nn.GELU(), nn.Linear(self.width, 1))

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "depth": self.depth, "residual_gain": self.residual_gain}

    def forward(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if y.shape != residual.shape or y.ndim != 4 or y.shape[1] != 3:
            raise ValueError(f"expected two (B, 3, h, w) tensors of one shape, got {tuple(y.shape)}, "
                             f"{tuple(residual.shape)}")  # fmt: skip
        if min(y.shape[-2:]) < 4:
            raise ValueError(f"the input must be at least 4 px, got {tuple(y.shape[-2:])}")
        f = self.body(torch.cat([y * 2 - 1, residual * self.residual_gain], dim=1))
        size = torch.full((f.shape[0], 1), math.log2(min(y.shape[-2:])) / 7.0, device=f.device, dtype=f.dtype)
        feats = torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3)), size], dim=1)
        return self.head(feats)[:, 0]


__all__ = ["PriorShareNet"]
