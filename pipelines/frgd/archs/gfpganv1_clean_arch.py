"""GFPGANv1Clean: U-Net encoder + StyleGAN2 decoder modulated by spatial feature transforms (SFT).

Parameter names match GFPGAN's ``GFPGANv1Clean`` so the official v1.3 / v1.4 checkpoints (``params_ema``) load
unchanged. The released models use :data:`OFFICIAL_CONFIG` (512x512 faces, 87,143,276 values).
Input: aligned faces ``(B, 3, out_size, out_size)`` RGB normalised to ``[-1, 1]``; output in the same range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .stylegan2_clean_arch import StyleGAN2GeneratorClean, stylegan2_channels


@dataclass
class GFPGANConfig:
    """Constructor arguments of :class:`GFPGANv1Clean`."""

    out_size: int = 512
    num_style_feat: int = 512
    channel_multiplier: float = 2
    decoder_load_path: str | None = None
    fix_decoder: bool = False
    num_mlp: int = 8
    input_is_latent: bool = True
    different_w: bool = True
    narrow: float = 1
    sft_half: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


OFFICIAL_CONFIG = GFPGANConfig()
"""The configuration of the released GFPGANv1.3 / v1.4 models."""


class StyleGAN2GeneratorCSFT(StyleGAN2GeneratorClean):
    """StyleGAN2 decoder whose first conv of each level is followed by ``out * scale + shift`` (SFT).

    With ``sft_half`` only the second half of the channels is modulated.
    """

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__(
            out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
        )
        self.sft_half = sft_half

    def _sft(self, out: torch.Tensor, i: int, conditions: list[torch.Tensor] | None) -> torch.Tensor:
        if not conditions or i >= len(conditions):  # the conditions may cover fewer levels
            return out
        scale, shift = conditions[i - 1], conditions[i]
        if self.sft_half:
            keep, mod = torch.split(out, out.size(1) // 2, dim=1)
            return torch.cat([keep, mod * scale + shift], dim=1)
        return out * scale + shift

    def forward(  # type: ignore[override]
        self,
        styles: list[torch.Tensor],
        conditions: list[torch.Tensor],
        input_is_latent: bool = False,
        noise: list[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: torch.Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``conditions``: ``[scale_8, shift_8, scale_16, shift_16, ...]`` from the U-Net decoder."""
        return self._synthesize(
            styles, conditions, input_is_latent, noise, randomize_noise, truncation, truncation_latent, inject_index,
            return_latents,
        )  # fmt: skip


class ResBlock(nn.Module):
    """Two 3x3 convs with a bilinear 2x up/down resize between them, plus a resized 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', got {mode!r}")
        self.scale_factor = 0.5 if mode == "down" else 2

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), negative_slope=0.2)
        out = F.leaky_relu(self.conv2(self._resize(out)), negative_slope=0.2)
        return out + self.skip(self._resize(x))


class GFPGANv1Clean(nn.Module):
    """GFPGAN generator (clean version). ``forward(x)`` -> ``(image, out_rgbs)``; both in ``[-1, 1]``."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        channel_multiplier: float = 1,
        decoder_load_path: str | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        input_is_latent: bool = False,
        different_w: bool = False,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        if decoder_load_path:
            raise ValueError("decoder_load_path is not supported; load a full GFPGAN state dict instead")
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.out_size = out_size

        ch = stylegan2_channels(channel_multiplier, narrow * 0.5)  # the U-Net uses half the decoder's width
        self.log_size = int(math.log(out_size, 2))
        first = 2**self.log_size
        self.conv_body_first = nn.Conv2d(3, ch[str(first)], 1)

        self.conv_body_down = nn.ModuleList()
        in_ch = ch[str(first)]
        for level in range(self.log_size, 2, -1):
            out_ch = ch[str(2 ** (level - 1))]
            self.conv_body_down.append(ResBlock(in_ch, out_ch, mode="down"))
            in_ch = out_ch
        self.final_conv = nn.Conv2d(in_ch, ch["4"], 3, 1, 1)

        self.conv_body_up = nn.ModuleList()
        in_ch = ch["4"]
        for level in range(3, self.log_size + 1):
            out_ch = ch[str(2**level)]
            self.conv_body_up.append(ResBlock(in_ch, out_ch, mode="up"))
            in_ch = out_ch

        self.toRGB = nn.ModuleList([nn.Conv2d(ch[str(2**level)], 3, 1) for level in range(3, self.log_size + 1)])

        n_w = (self.log_size * 2 - 2) if different_w else 1
        self.final_linear = nn.Linear(ch["4"] * 4 * 4, n_w * num_style_feat)

        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size=out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
            sft_half=sft_half,
        )
        if fix_decoder:
            self.stylegan_decoder.requires_grad_(False)

        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for level in range(3, self.log_size + 1):
            c = ch[str(2**level)]
            sft_c = c if sft_half else 2 * c
            self.condition_scale.append(_sft_head(c, sft_c))
            self.condition_shift.append(_sft_head(c, sft_c))

    @classmethod
    def from_config(cls, cfg: dict | GFPGANConfig) -> GFPGANv1Clean:
        """Build from a config dict (keys of :class:`GFPGANConfig`)."""
        d = cfg.to_dict() if isinstance(cfg, GFPGANConfig) else dict(cfg)
        return cls(**{k: d[k] for k in GFPGANConfig().to_dict() if k in d})

    def forward(
        self,
        x: torch.Tensor,
        return_latents: bool = False,
        return_rgb: bool = True,
        randomize_noise: bool = True,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x`` ``(B, 3, S, S)`` in ``[-1, 1]`` -> ``(restored (B, 3, S, S), [intermediate RGB at 8, 16, .. S])``."""
        feat = F.leaky_relu(self.conv_body_first(x), negative_slope=0.2)
        skips: list[torch.Tensor] = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), negative_slope=0.2)

        style_code = self.final_linear(feat.view(feat.size(0), -1))
        if self.different_w:
            style_code = style_code.view(style_code.size(0), -1, self.num_style_feat)

        conditions: list[torch.Tensor] = []
        out_rgbs: list[torch.Tensor] = []
        for i, up in enumerate(self.conv_body_up):
            feat = up(feat + skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                out_rgbs.append(self.toRGB[i](feat))

        image, _ = self.stylegan_decoder(
            [style_code],
            conditions,
            return_latents=return_latents,
            input_is_latent=self.input_is_latent,
            randomize_noise=randomize_noise,
        )
        return image, out_rgbs


def _sft_head(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(in_ch, out_ch, 3, 1, 1)
    )
