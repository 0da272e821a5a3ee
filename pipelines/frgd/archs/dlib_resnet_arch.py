"""PyTorch port of dlib's face-recognition metric ResNet (``dlib_face_recognition_resnet_model_v1``).

dlib's definition (``dnn_face_recognition_ex.cpp``), input side first::

    input_rgb_image_sized<150>            (pixel - avg_rgb) / 256, RGB, 150x150
    con<32,7,7,2,2> affine relu            7x7 stride 2, no padding -> 72x72
    max_pool<3,3,2,2>                      no padding -> 35x35
    3 x ares<32>                           35x35
    ares_down<64>  + 3 x ares<64>          17x17
    ares_down<128> + 2 x ares<128>         8x8
    ares_down<256> + 2 x ares<256>         4x4 (the block gives 3x3, the skip 4x4; see below)
    ares_down<256>                         2x2 (block 1x1, skip 2x2)
    avg_pool_everything, fc_no_bias<128>   -> 128-d descriptor (loss_metric; same person if distance < 0.6)

``ares`` is ``relu(x + affine(con3x3(relu(affine(con3x3(x))))))``; ``ares_down`` uses a stride-2, unpadded first
convolution and a 2x2/2 average-pooled skip. ``affine`` is a fixed per-channel ``gamma * x + beta`` (batch norm folded
at training time). dlib's ``add_prev`` adds tensors of different shapes by zero-extending both to the larger channel
count and spatial size with the overlap at the top-left, which :func:`add_prev` reproduces; the shapes do differ in
the last two down blocks (``floor((n-3)/2)+1`` vs ``floor(n/2)``).

State-dict names are this module's own (dlib has no PyTorch release); :func:`frgd.identity.encoder` loads dlib's
``.dat`` file through :mod:`frgd.identity.dlib_format`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

DLIB_AVG_RGB = (122.782, 117.001, 104.298)
"""dlib's ``input_rgb_image`` mean (the values stored in the released model, rounded here for documentation)."""


@dataclass
class DlibResNetConfig:
    """Architecture hyper-parameters. ``stages``: ``(channels, blocks, first_block_downsamples)`` per stage."""

    stem_channels: int = 32
    stages: list[tuple[int, int, bool]] = field(
        default_factory=lambda: [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]
    )
    embedding_dim: int = 128
    input_size: int = 150
    avg_rgb: tuple[float, float, float] = DLIB_AVG_RGB

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DlibResNetConfig:
        d = dict(d)
        d["stages"] = [tuple(s) for s in d.get("stages", [])] or cls().stages
        d["avg_rgb"] = tuple(d.get("avg_rgb", DLIB_AVG_RGB))
        return cls(**d)


class Affine(nn.Module):
    """dlib's ``affine`` layer in convolutional mode: ``y = weight[c] * x + bias[c]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1).to(x.dtype) + self.bias.view(1, -1, 1, 1).to(x.dtype)


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: ``a + b`` after zero-extending both (bottom/right, extra channels) to the larger shape."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def ext(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return ext(a) + ext(b)


class DlibResBlock(nn.Module):
    """``ares`` / ``ares_down``: two 3x3 convolutions with affines, identity or avg-pooled skip, ReLU after the add."""

    def __init__(self, in_ch: int, out_ch: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.aff1 = Affine(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1)
        self.aff2 = Affine(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_prev(y, skip))


class DlibFaceResNet(nn.Module):
    """dlib's metric ResNet. ``forward(x (B,3,S,S) RGB in [0,1]) -> (B, embedding_dim)`` raw descriptors.

    ``S`` is ``config.input_size`` (150 for the released model: feed dlib face chips). The descriptors are not
    normalised; dlib calls two faces the same person when their Euclidean distance is below 0.6.
    """

    def __init__(self, config: DlibResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DlibResNetConfig()
        cfg = self.config
        avg = torch.tensor(cfg.avg_rgb, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("avg_rgb", avg, persistent=False)
        self.stem_conv = nn.Conv2d(3, cfg.stem_channels, 7, stride=2, padding=0)
        self.stem_aff = Affine(cfg.stem_channels)
        blocks = []
        ch = cfg.stem_channels
        for out_ch, n, down in cfg.stages:
            for i in range(n):
                blocks.append(DlibResBlock(ch, out_ch, down and i == 0))
                ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(ch, cfg.embedding_dim, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,3,S,S)`` in ``[0,1]`` -> ``(B, C)`` globally average-pooled features (the fc layer's input)."""
        x = (x * 255.0 - self.avg_rgb.to(x.dtype)) / 256.0
        x = F.relu(self.stem_aff(self.stem_conv(x)))
        x = F.max_pool2d(x, 3, 2)
        for blk in self.blocks:
            x = blk(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))
