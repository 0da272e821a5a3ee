"""FRGD denoiser: a diffusers ``UNet2DModel`` conditioned on the degraded face, a fusion mask/known content and an
identity embedding.

Inputs of :meth:`FRGDUNet.forward`
----------------------------------
``sample``   ``(B, 3, H, W)`` the noisy image ``x_t`` in the diffusion space ``[-1, 1]`` (``x_0 = 2 * face - 1``).
``timestep`` ``(B,)`` or a scalar, integer training timesteps ``0 .. num_train_timesteps - 1``.
``cond``     ``(B, 7, H, W)`` conditioning channels, concatenated to ``sample`` before the first convolution:

=============  ==========================================================================================
``cond[:, 0:3]``  the degraded face resized to ``H x W`` (bicubic), in ``[-1, 1]``
``cond[:, 3:4]``  the fusion mask ``M`` in ``{0, 1}`` (or soft in ``[0, 1]``): **1 = generate here**,
                  **0 = keep the known content**; all ones for plain restoration
``cond[:, 4:7]``  the known content in ``[-1, 1]`` multiplied by ``(1 - M)`` (zeros where generating)
=============  ==========================================================================================

``identity`` ``(B, D)`` unit-norm face-recognition embedding of the reference photo (``D = identity_dim``, 128 for
the dlib backend), or ``None``: the learned null embedding is used for every sample.
``drop_identity`` ``(B,)`` bool tensor or ``None``: where True the learned null embedding replaces the identity
(classifier-free identity dropout in training; unconditional branch at sampling time).

The identity enters through ``class_embed_type="identity"``: ``identity_mlp(identity)`` (``D -> time_embed_dim``)
is added to the timestep embedding and so modulates every ResNet block.

**Standardised identity input** (``identity_center`` ``(D,)``, ``identity_scale``; config, no weights): the MLP sees
``(e - identity_center) / identity_scale`` instead of the unit embedding ``e`` (the null embedding included). Face
recognition embeddings of different people sit in a narrow cone (dlib: mean cosine 0.83 between strangers on
faces128 val), so the raw inputs differ by a few hundredths per component and the first layer hardly learns from
them. :func:`standardise_identity_input` switches a trained model to the standardised input without changing
its function (the first layer absorbs the centre and scale), so training can continue from it.

Output: ``(B, 3, H, W)`` the raw prediction, ``v`` (``prediction_type="v_prediction"``) or ``epsilon``. ``H`` and
``W`` must be multiples of ``2 ** (len(block_out_channels) - 1)``.

A model directory (see :mod:`frgd.diffusion.model`) holds ``config.json`` + ``diffusion_pytorch_model.safetensors``
(from :meth:`save_pretrained`), ``scheduler/scheduler_config.json`` and ``identity.json``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from torch import nn

COND_CHANNELS = 7
"""Number of conditioning channels: degraded (3) + mask (1) + known content (3)."""
COND_DEGRADED = slice(0, 3)
COND_MASK = slice(3, 4)
COND_KNOWN = slice(4, 7)

PREDICTION_TYPES = ("v_prediction", "epsilon")
IDENTITY_STATISTICS = ("identity_center", "identity_scale")
"""Config entries that standardise the identity input: data statistics, not architecture (shapes do not change)."""


def default_block_types(n_blocks: int, attn_levels: int = 2) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Down/up block types with self-attention only at the ``attn_levels`` lowest resolutions.

    For 4 blocks at 128 px that is 32x32 and 16x16 (the mid block at 16x16 also has attention).
    """
    down = tuple("AttnDownBlock2D" if i >= n_blocks - attn_levels else "DownBlock2D" for i in range(n_blocks))
    up = tuple("AttnUpBlock2D" if i < attn_levels else "UpBlock2D" for i in range(n_blocks))
    return down, up


class FRGDUNet(ModelMixin, ConfigMixin):
    """Identity-conditioned UNet denoiser (see the module docstring for the tensor layout)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sample_size: int = 128,
        in_channels: int = 3,
        cond_channels: int = COND_CHANNELS,
        out_channels: int = 3,
        identity_dim: int = 128,
        block_out_channels: tuple[int, ...] = (64, 128, 256, 256),
        layers_per_block: int = 2,
        down_block_types: tuple[str, ...] | None = None,
        up_block_types: tuple[str, ...] | None = None,
        norm_num_groups: int = 32,
        attention_head_dim: int = 32,
        dropout: float = 0.0,
        resnet_time_scale_shift: str = "default",
        prediction_type: str = "v_prediction",
        identity_dropout: float = 0.15,
        identity_center: list[float] | None = None,
        identity_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if not 0.0 <= identity_dropout < 1.0:
            raise ValueError(f"identity_dropout must be in [0, 1), got {identity_dropout}")
        block_out_channels = tuple(block_out_channels)
        default_down, default_up = default_block_types(len(block_out_channels))
        down_block_types = tuple(down_block_types or default_down)
        up_block_types = tuple(up_block_types or default_up)
        time_embed_dim = block_out_channels[0] * 4
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels + cond_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
            dropout=dropout,
            resnet_time_scale_shift=resnet_time_scale_shift,
            class_embed_type="identity",
        )
        self.identity_mlp = nn.Sequential(
            nn.Linear(identity_dim, time_embed_dim),
            nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )
        # Learned "no identity" embedding (unit norm at init, like a real embedding).
        null = torch.randn(identity_dim, generator=torch.Generator().manual_seed(0))
        self.null_identity = nn.Parameter(null / null.norm())
        self._install_identity_statistics(identity_center, identity_scale)

    def set_identity_statistics(self, center: list[float] | None, scale: float = 1.0) -> None:
        """Standardise the identity input with ``center`` ``(D,)`` and ``scale`` (``None``: the unit embedding as it
        is) and record both in the config. The weights are left as they are, so a trained model's function changes:
        :func:`standardise_identity_input` keeps it."""
        self._install_identity_statistics(center, scale)
        self.register_to_config(
            identity_center=None if center is None else [float(v) for v in center], identity_scale=float(scale)
        )

    def _install_identity_statistics(self, center: list[float] | None, scale: float) -> None:
        """Check ``center`` and ``scale`` and install them (the config is the caller's)."""
        d = int(self.config.identity_dim)
        if center is not None and (len(center) != d or not all(math.isfinite(float(v)) for v in center)):
            raise ValueError(f"identity_center must hold {d} finite numbers")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"identity_scale must be a positive number, got {scale}")
        # plain numbers, made a tensor on the input's device at each call: no buffer for diffusers' meta-device loading
        self.identity_mean: tuple[float, ...] | None = None if center is None else tuple(float(v) for v in center)
        self._identity_scale = float(scale)

    @property
    def downsample_factor(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def identity_embedding(
        self, identity: torch.Tensor | None, batch: int, drop_identity: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, D)`` identity (normalised) with the null embedding where absent/dropped -> ``(B, time_embed_dim)``."""
        null = self.null_identity.to(self.dtype)[None].expand(batch, -1)
        if identity is None:
            ident = null
        else:
            if identity.shape != (batch, self.config.identity_dim):
                raise ValueError(
                    f"identity must have shape ({batch}, {self.config.identity_dim}), got {tuple(identity.shape)}"
                )
            ident = F.normalize(identity.to(self.dtype), dim=1)
            if drop_identity is not None:
                drop = drop_identity.to(device=ident.device, dtype=torch.bool).reshape(batch, 1)
                ident = torch.where(drop, null, ident)
        if self.identity_mean is not None:  # in float32: the differences are a few hundredths
            mean = torch.tensor(self.identity_mean, dtype=torch.float32, device=ident.device)
            ident = ((ident.float() - mean) / self._identity_scale).to(self.dtype)
        return self.identity_mlp(ident)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int | float,
        cond: torch.Tensor,
        identity: torch.Tensor | None = None,
        drop_identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict ``v`` or ``epsilon`` ``(B, 3, H, W)`` for noisy ``sample`` at ``timestep`` (see module doc)."""
        b, _, h, w = sample.shape
        if cond.shape != (b, self.config.cond_channels, h, w):
            raise ValueError(
                f"cond must have shape ({b}, {self.config.cond_channels}, {h}, {w}), got {tuple(cond.shape)}"
            )
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(f"height and width must be multiples of {f}, got {h}x{w}")
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], device=sample.device)
        timestep = timestep.to(sample.device).reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(b)
        class_labels = self.identity_embedding(identity, b, drop_identity)
        x = torch.cat([sample, cond.to(sample.dtype)], dim=1)
        return self.unet(x, timestep, class_labels=class_labels, return_dict=False)[0]

    def sample_identity_drop(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B,)`` bool mask, True with probability ``config.identity_dropout`` (training-time identity dropout)."""
        u = torch.rand(batch, generator=generator, device=generator.device if generator is not None else "cpu")
        return u < self.config.identity_dropout


def identity_statistics(embeddings: torch.Tensor) -> tuple[list[float], float]:
    """``(center, scale)`` of unit identity embeddings ``(N, D)``: their mean, and the RMS per component of their
    deviations from it (so that a standardised input has unit RMS components)."""
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"identity_statistics needs (N >= 2, D) embeddings, got {tuple(embeddings.shape)}")
    e = F.normalize(embeddings.double(), dim=1)
    mean = e.mean(0)
    scale = float((e - mean).pow(2).mean().sqrt())
    if not scale > 0:
        raise ValueError("identity_statistics: the embeddings do not vary")
    return [float(v) for v in mean], scale


@torch.no_grad()
def standardise_identity_input(model: FRGDUNet, center: list[float], scale: float) -> None:
    """Switch ``model`` (without a standardised identity input) to ``(e - center) / scale`` *keeping its function*:
    the first identity layer ``W e + b`` becomes ``(W scale) z + (b + W center)`` for ``z = (e - center) / scale``,
    exact up to float round-off for every identity and the null embedding. Records both in the config."""
    if model.config.identity_center is not None:
        raise ValueError("the identity input is standardised already")
    model.set_identity_statistics(center, scale)  # checks them
    first = model.identity_mlp[0]
    w = first.weight.double()
    c = torch.tensor([float(v) for v in center], dtype=torch.float64, device=w.device)
    first.bias.copy_((first.bias.double() + w @ c).to(first.bias.dtype))
    first.weight.copy_((w * float(scale)).to(first.weight.dtype))


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a tiny :class:`FRGDUNet` for fast tests (works at any multiple of 4, e.g. 32x32)."""
    cfg: dict[str, Any] = {
        "sample_size": 32,
        "block_out_channels": (16, 32, 32),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "norm_num_groups": 8,
        "attention_head_dim": 8,
    }
    cfg.update(overrides)
    return cfg
