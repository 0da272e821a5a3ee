"""SRVGGNetCompact (Real-ESRGAN ``realesr-animevideov3`` / ``realesr-general-x4v3``).

Parameter names match Real-ESRGAN's ``SRVGGNetCompact``: ``body.{2k}`` are 3x3 convolutions, ``body.{2k+1}`` the
activations (PReLU weights ``(num_feat,)``), the last convolution outputs ``num_out_ch * upscale**2`` channels that are
pixel-shuffled and added to the nearest-neighbour upsampled input. ``(B, 3, H, W)`` -> ``(B, 3, upscale*H, upscale*W)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class SRVGGConfig:
    """Constructor arguments of :class:`SRVGGNetCompact` (animevideov3: 64 features, 16 convs, x4, PReLU)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16
    upscale: int = 4
    act_type: str = "prelu"

    def to_dict(self) -> dict:
        return asdict(self)


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown act_type {act_type!r} (prelu, relu or leakyrelu)")


class SRVGGNetCompact(nn.Module):
    """Plain VGG-style body at LR resolution + pixel shuffle + nearest-upsampled input residual."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        self.config = SRVGGConfig(num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type)
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @classmethod
    def from_config(cls, cfg: dict | SRVGGConfig) -> SRVGGNetCompact:
        """Build from a config dict (keys of :class:`SRVGGConfig`)."""
        d = cfg.to_dict() if isinstance(cfg, SRVGGConfig) else dict(cfg)
        return cls(**{k: d[k] for k in SRVGGConfig().to_dict() if k in d})

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output needs: one per 3x3 conv (first, body, last), all at input resolution."""
        return self.config.num_conv + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, upscale*H, upscale*W)``."""
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
