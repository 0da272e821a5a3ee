"""StyleGAN2 generator, "clean" variant (no custom CUDA ops), as used as GFPGAN's decoder.

Parameter and buffer names match GFPGAN's ``StyleGAN2GeneratorClean`` (``style_mlp.{1,3,..}``, ``constant_input``,
``style_conv1``, ``to_rgb1``, ``style_convs.N``, ``to_rgbs.N``, ``noises.noiseN``) so official checkpoints load as is.
Images come out in ``[-1, 1]`` (roughly), shape ``(B, 3, out_size, out_size)``.
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn
from torch.nn import functional as F


class NormStyleCode(nn.Module):
    """Pixel norm of style codes ``(B, C)``: divide by the RMS over channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Convolution whose weight is scaled per input channel by an affine map of the style (and demodulated).

    ``weight``: ``(1, out, in, k, k)``; ``modulation``: ``Linear(num_style_feat, in)``. ``sample_mode`` ``"upsample"``
    / ``"downsample"`` resizes the input bilinearly by 2 / 0.5 before the convolution. No bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        nn.init.constant_(self.modulation.bias, 1.0)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(fan_in)
        )
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, in, H, W)``, ``style`` ``(B, num_style_feat)`` -> ``(B, out, H', W')``."""
        b, c = x.shape[:2]
        w = self.weight * self.modulation(style).view(b, 1, c, 1, 1)  # (B, out, in, k, k)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4)) + self.eps).view(b, self.out_channels, 1, 1, 1)
        w = w.reshape(b * self.out_channels, c, self.kernel_size, self.kernel_size)
        if self.sample_mode == "upsample":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif self.sample_mode == "downsample":
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        h, wd = x.shape[2:]
        # grouped convolution: one group per sample, each with its own modulated weight
        out = F.conv2d(x.reshape(1, b * c, h, wd), w, padding=self.padding, groups=b)
        return out.view(b, self.out_channels, out.shape[2], out.shape[3])


class StyleConv(nn.Module):
    """Modulated conv (x sqrt(2)) + scaled noise + bias + leaky ReLU(0.2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate=demodulate, sample_mode=sample_mode
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) * math.sqrt(2.0)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        out = out + self.weight * noise + self.bias
        return F.leaky_relu(out, negative_slope=0.2)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB + bias, plus the (2x bilinear upsampled) previous RGB skip."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False, sample_mode=None)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """Learned constant ``(1, C, size, size)`` repeated over the batch."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


def stylegan2_channels(channel_multiplier: float, narrow: float) -> dict[str, int]:
    """Channel count per resolution (keys ``"4"`` .. ``"1024"``) of the StyleGAN2 decoder."""
    base = {"4": 512, "8": 512, "16": 512, "32": 512}
    scaled = {"64": 256, "128": 128, "256": 64, "512": 32, "1024": 16}
    out = {k: int(v * narrow) for k, v in base.items()}
    out.update({k: int(v * channel_multiplier * narrow) for k, v in scaled.items()})
    return out


class StyleGAN2GeneratorClean(nn.Module):
    """StyleGAN2 generator: style MLP, 4x4 constant, two style convs per resolution up to ``out_size``, ToRGB skips."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            lin = nn.Linear(num_style_feat, num_style_feat, bias=True)
            nn.init.kaiming_normal_(lin.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(lin.bias)
            mlp += [lin, nn.LeakyReLU(negative_slope=0.2, inplace=True)]
        self.style_mlp = nn.Sequential(*mlp)

        channels = stylegan2_channels(channel_multiplier, narrow)
        self.channels = channels
        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.constant_input = ConstantInput(channels["4"], size=4)
        self.style_conv1 = StyleConv(channels["4"], channels["4"], 3, num_style_feat, demodulate=True)
        self.to_rgb1 = ToRGB(channels["4"], num_style_feat, upsample=False)

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for idx in range(self.num_layers):
            res = 2 ** ((idx + 5) // 2)
            self.noises.register_buffer(f"noise{idx}", torch.randn(1, 1, res, res))
        in_ch = channels["4"]
        for level in range(3, self.log_size + 1):
            out_ch = channels[str(2**level)]
            self.style_convs.append(StyleConv(in_ch, out_ch, 3, num_style_feat, sample_mode="upsample"))
            self.style_convs.append(StyleConv(out_ch, out_ch, 3, num_style_feat, sample_mode=None))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, upsample=True))
            in_ch = out_ch

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh noise maps, one per style conv layer."""
        dev = self.constant_input.weight.device
        noises = [torch.randn(1, 1, 4, 4, device=dev)]
        for level in range(3, self.log_size + 1):
            noises += [torch.randn(1, 1, 2**level, 2**level, device=dev) for _ in range(2)]
        return noises

    def get_latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.style_mlp(x)

    def mean_latent(self, num_latent: int) -> torch.Tensor:
        z = torch.randn(num_latent, self.num_style_feat, device=self.constant_input.weight.device)
        return self.style_mlp(z).mean(0, keepdim=True)

    def _prepare(
        self,
        styles: list[torch.Tensor],
        input_is_latent: bool,
        noise: list[torch.Tensor | None] | None,
        randomize_noise: bool,
        truncation: float,
        truncation_latent: torch.Tensor | None,
        inject_index: int | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Style codes -> per-layer latents ``(B, num_latent, F)`` and the noise list."""
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if noise is None:
            if randomize_noise:
                noise = [None] * self.num_layers
            else:
                noise = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            latent = s if s.ndim >= 3 else s.unsqueeze(1).repeat(1, self.num_latent, 1)
        elif len(styles) == 2:
            if inject_index is None:
                inject_index = random.randint(1, self.num_latent - 1)
            first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            second = styles[1].unsqueeze(1).repeat(1, self.num_latent - inject_index, 1)
            latent = torch.cat([first, second], 1)
        else:
            raise ValueError(f"expected one or two style codes, got {len(styles)}")
        return latent, noise

    def _sft(self, out: torch.Tensor, i: int, conditions: list[torch.Tensor] | None) -> torch.Tensor:
        """Hook for spatial feature transforms after the first conv of each level (identity here)."""
        return out

    def forward(
        self,
        styles: list[torch.Tensor],
        input_is_latent: bool = False,
        noise: list[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        truncation: float = 1,
        truncation_latent: torch.Tensor | None = None,
        inject_index: int | None = None,
        return_latents: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate ``(B, 3, out_size, out_size)``; returns ``(image, latent or None)``."""
        return self._synthesize(
            styles, None, input_is_latent, noise, randomize_noise, truncation, truncation_latent, inject_index,
            return_latents,
        )  # fmt: skip

    def _synthesize(
        self,
        styles: list[torch.Tensor],
        conditions: list[torch.Tensor] | None,
        input_is_latent: bool,
        noise: list[torch.Tensor | None] | None,
        randomize_noise: bool,
        truncation: float,
        truncation_latent: torch.Tensor | None,
        inject_index: int | None,
        return_latents: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        latent, noise = self._prepare(
            styles, input_is_latent, noise, randomize_noise, truncation, truncation_latent, inject_index
        )
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            conv_a, conv_b = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = conv_a(out, latent[:, i], noise=noise[2 * level + 1])
            out = self._sft(out, i, conditions)
            out = conv_b(out, latent[:, i + 1], noise=noise[2 * level + 2])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip, (latent if return_latents else None)
