"""FRGD-SR: a light EDSR-baseline-style network for PSNR-oriented super-resolution (x2, x3, x4).

LR ``(B, 3, h, w)`` in [0, 1] -> SR ``(B, 3, s*h, s*w)``. Mean shift, a 3x3 head conv, ``num_block`` residual blocks
(conv-ReLU-conv, no batch norm, residual scaling ``res_scale``), a body conv with a long skip, and an ESPCN-style tail
(one conv to ``3 * s^2`` channels + PixelShuffle) added to a bicubic upsampling of the input (global residual). The body
runs entirely at LR resolution, so training fits a CPU budget.

State-dict names: ``head.weight``, ``body.{i}.conv1.weight``, ``body.{i}.conv2.weight``, ``body_conv.weight``,
``tail.weight`` (+ biases).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean used by EDSR


class ResidualBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, scaled and added to the input. ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, num_feat: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True)) * self.res_scale


class EDSRLite(nn.Module):
    """Light EDSR with a PixelShuffle tail and a bicubic global residual. ``(B,3,h,w) -> (B,3,s*h,s*w)``."""

    def __init__(
        self, scale: int = 4, num_feat: int = 32, num_block: int = 6, res_scale: float = 1.0, num_in_ch: int = 3
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"EDSRLite supports scale 2, 3 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.register_buffer("mean", torch.tensor(RGB_MEAN[:num_in_ch]).view(1, num_in_ch, 1, 1), persistent=False)
        self.head = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlock(num_feat, res_scale) for _ in range(num_block)))
        self.body_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.tail = nn.Conv2d(num_feat, num_in_ch * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.tail.weight)  # start as plain bicubic
        nn.init.zeros_(self.tail.bias)

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output needs: one per 3x3 conv (head, 2 per block, body, tail) + 2 (bicubic)."""
        return 2 * len(self.body) + 3 + 2

    def config(self) -> dict:
        """Constructor arguments (saved beside the weights)."""
        return {
            "scale": self.scale,
            "num_feat": self.head.out_channels,
            "num_block": len(self.body),
            "res_scale": self.body[0].res_scale if len(self.body) else 1.0,
            "num_in_ch": self.num_in_ch,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        f = self.head(x - self.mean)
        f = f + self.body_conv(self.body(f))
        return base + self.shuffle(self.tail(f))
