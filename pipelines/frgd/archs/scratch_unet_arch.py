"""Damage detector: a small U-Net that marks the scratches, cracks, spots and tears of a scanned photo.

Photo ``(B, 3, H, W)`` in [0, 1] (``H`` and ``W`` multiples of :meth:`ScratchUNet.multiple`) -> logits
``(B, 1, H, W)`` of "this pixel is damaged". Trained on the CPU on synthetic damage (:mod:`frgd.scratch.synth`);
:mod:`frgd.scratch.detect` runs it on photos of any size.

Layout: one level per entry of ``channels``: two 3x3 convolutions (GELU) at full resolution, then at 1/2, 1/4, ...
(each level entered by a stride-2 convolution); on the way up a nearest upsample and a 3x3 convolution to the finer
level's width, added to that level's features (additive skips: no concatenation), and a second convolution; a 1x1
head to one logit. A scratch is one or two pixels wide, so the full-resolution level is what sees it; the coarse
levels see what is around it (a catchlight in an eye, a hair, a collar's edge are not damage). No normalisation
layers: a pixel's logit does not depend on the batch or the photo's size.

State-dict names: ``down.{i}.{0,2}.*`` (``down.0.0`` the stem), ``up.{i}.{0,1}.*``, ``head.*``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _Up(nn.Module):
    """Upsample ``c_in`` features to the finer level, project to ``c_out``, add the skip and refine."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv = nn.Conv2d(c_out, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return F.gelu(self.conv(F.gelu(self.proj(x) + skip)))


class ScratchUNet(nn.Module):
    """``(B, 3, H, W)`` photo in [0, 1] -> ``(B, 1, H, W)`` damage logits."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 48, 64)) -> None:
        super().__init__()
        ch = tuple(int(c) for c in channels)
        if not ch or min(ch) < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = ch
        down = []
        for i, c in enumerate(ch):
            c_in = 3 if i == 0 else ch[i - 1]
            first = nn.Conv2d(c_in, c, 3, 1 if i == 0 else 2, 1)
            down.append(nn.Sequential(first, nn.GELU(), nn.Conv2d(c, c, 3, 1, 1), nn.GELU()))
        self.down = nn.ModuleList(down)
        self.up = nn.ModuleList(_Up(ch[i], ch[i - 1]) for i in range(len(ch) - 1, 0, -1))
        self.head = nn.Conv2d(ch[0], 1, 1)

    def config(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}

    @property
    def multiple(self) -> int:
        """``H`` and ``W`` must be multiples of this (``2 ** (levels - 1)``)."""
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
        m = self.multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"H and W must be multiples of {m}, got {tuple(x.shape[-2:])}")
        feats = []
        h = x * 2.0 - 1.0
        for level in self.down:
            h = level(h)
            feats.append(h)
        for up, skip in zip(self.up, reversed(feats[:-1])):
            h = up(h, skip)
        return self.head(h)


__all__ = ["ScratchUNet"]
