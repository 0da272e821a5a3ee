"""Identity student: a small face-recognition network distilled from the dlib ResNet, for training losses.

An aligned face ``(B, 3, S, S)`` RGB in [0, 1] (the faces128 template) -> a unit descriptor ``(B, dim)``, trained on
the CPU (:mod:`frgd.diffusion.training.train_identity_student`) to point where the dlib descriptor of the same face
points. It is small enough to travel with a GPU round (a few hundred KiB as float16) and cheap enough to run, and to
back-propagate through, on every training batch: the rounds' identity loss (:mod:`frgd.diffusion.training.
identity_loss`) compares its descriptor of the model's clean estimate with its descriptor of the true face. It is
never used to sample or to evaluate (sampling guidance uses the dlib ResNet itself, evaluation the independent judge).

Layout: the face is resized to ``input_size`` (antialiased bilinear; differentiable), a stride-2 stem, then one stage
per entry of ``widths`` after the first (a stride-2 3x3 convolution and ``depth - 1`` residual 3x3 convolutions,
batch-norm, ReLU), a 1x1 reduction to ``head`` channels kept at their position (a face is aligned: where a feature is
matters), flattened into a linear layer to ``dim``, L2-normalised. Batch-norm runs in eval mode once trained, so a
face's descriptor does not depend on its batch.

State-dict names: ``stem.*``, ``stages.{i}.{j}.*``, ``reduce.*``, ``fc.*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))


class _Residual(nn.Module):
    """``relu(x + bn(conv(x)))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = _conv_bn(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class IdentityStudent(nn.Module):
    """``(B, 3, H, W)`` RGB [0, 1] aligned faces -> ``(B, dim)`` unit descriptors."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 48, 80, 128),
        depth: int = 2,
        head: int = 32,
        dim: int = 128,
        input_size: int = 64,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or min(widths) < 1 or depth < 1 or head < 1 or dim < 1:
            raise ValueError(f"bad IdentityStudent shape: widths={widths}, depth={depth}, head={head}, dim={dim}")
        if input_size % (2 ** len(widths)):
            raise ValueError(f"input_size {input_size} must be divisible by 2**{len(widths)}")
        self.widths, self.depth, self.head, self.dim = tuple(int(w) for w in widths), int(depth), int(head), int(dim)
        self.input_size = int(input_size)
        self.stem = nn.Sequential(_conv_bn(3, self.widths[0], 2), nn.ReLU())
        stages = []
        for cin, cout in zip(self.widths[:-1], self.widths[1:]):
            layers: list[nn.Module] = [_conv_bn(cin, cout, 2), nn.ReLU()]
            layers += [_Residual(cout) for _ in range(self.depth - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.reduce = nn.Conv2d(self.widths[-1], self.head, 1)
        side = self.input_size // 2 ** len(self.widths)
        self.fc = nn.Linear(self.head * side * side, self.dim)

    def config(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "depth": self.depth, "head": self.head, "dim": self.dim,
                "input_size": self.input_size}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) faces, got {tuple(x.shape)}")
        s = self.input_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        f = self.stem(x * 2 - 1)
        for stage in self.stages:
            f = stage(f)
        f = self.reduce(f).flatten(1)
        return F.normalize(self.fc(f), dim=1)


__all__ = ["IdentityStudent"]
