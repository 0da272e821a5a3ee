"""FRGD prior: a small U-Net that regresses the clean aligned face from the degraded one (L1, trained on the CPU).

Degraded face resized to ``S`` (the sampler's bicubic ``deg128``) ``(B, 3, S, S)`` in [0, 1] -> estimate
``(B, 3, S, S)`` (unclamped) = input + a predicted residual. It is the base of FRGD's whole-face samples (the image
the sampler's img2img starts from) and the editor's instant preview.

Layout: ``PixelUnshuffle(2)`` (S -> S/2, 12 channels), a head conv, then one level per entry of ``channels`` at
S/2, S/4, ... (``blocks`` residual blocks on the way down and up, stride-2 convs down, nearest-upsample + conv up, skip
additions), ``mid_blocks`` residual blocks at the coarsest level (S/16 for four levels: the whole face in a few
cells), a tail conv to 12 channels and ``PixelShuffle(2)`` back to ``S``. No normalisation layers, so the output is a
deterministic function of the input at any batch size.

State-dict names: ``head.*``, ``down.{i}.blocks.{j}.conv{1,2}.*``, ``down.{i}.reduce.*``, ``mid.{j}.conv{1,2}.*``,
``up.{i}.expand.*``, ``up.{i}.blocks.{j}.conv{1,2}.*``, ``tail.*``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """conv3x3 -> SiLU -> conv3x3 added to the input. ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


class _Down(nn.Module):
    """Residual blocks at ``c_in``, then a stride-2 conv to ``c_out``."""

    def __init__(self, c_in: int, c_out: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResBlock(c_in) for _ in range(blocks)])
        self.reduce = nn.Conv2d(c_in, c_out, 3, 2, 1)


class _Up(nn.Module):
    """Nearest x2 and a conv from ``c_in`` to ``c_out``, the skip added, then residual blocks."""

    def __init__(self, c_in: int, c_out: int, blocks: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.blocks = nn.Sequential(*[ResBlock(c_out) for _ in range(blocks)])


class FacePriorNet(nn.Module):
    """Degraded face ``(B, 3, S, S)`` in [0, 1] -> clean estimate ``(B, 3, S, S)`` (input + residual, unclamped).

    ``S`` must be divisible by ``2 ** len(channels)``.
    """

    def __init__(
        self, channels: tuple[int, ...] | list[int] = (32, 48, 64, 96), blocks: int = 1, mid_blocks: int = 2
    ) -> None:
        super().__init__()
        ch = [int(c) for c in channels]
        if len(ch) < 2 or blocks < 0 or mid_blocks < 0:
            raise ValueError("channels needs at least two levels; blocks and mid_blocks must be >= 0")
        self.channels, self.num_blocks, self.num_mid_blocks = ch, int(blocks), int(mid_blocks)
        self.head = nn.Conv2d(12, ch[0], 3, 1, 1)
        self.down = nn.ModuleList(_Down(ch[i], ch[i + 1], blocks) for i in range(len(ch) - 1))
        self.mid = nn.Sequential(*[ResBlock(ch[-1]) for _ in range(mid_blocks)])
        self.up = nn.ModuleList(_Up(ch[i + 1], ch[i], blocks) for i in reversed(range(len(ch) - 1)))
        self.tail = nn.Conv2d(ch[0], 12, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)  # starts as the identity: the estimate is the input
        nn.init.zeros_(self.tail.bias)

    @property
    def multiple(self) -> int:
        """Input sides must be divisible by this."""
        return 2 ** len(self.channels)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (saved as ``config.json`` beside the weights)."""
        return {"channels": list(self.channels), "blocks": self.num_blocks, "mid_blocks": self.num_mid_blocks}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"expected (B, 3, H, W) with H, W divisible by {self.multiple}, got {tuple(x.shape)}")
        h = self.head(F.pixel_unshuffle(x - 0.5, 2))
        skips = []
        for d in self.down:
            h = d.blocks(h)
            skips.append(h)
            h = d.reduce(h)
        h = self.mid(h)
        for u in self.up:
            h = u.expand(F.interpolate(h, scale_factor=2.0, mode="nearest")) + skips.pop()
            h = u.blocks(h)
        return x + F.pixel_shuffle(self.tail(h), 2)


__all__ = ["FacePriorNet", "ResBlock"]
