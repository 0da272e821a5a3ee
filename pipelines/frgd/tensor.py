"""Conversions between numpy images ``(H, W, C)`` and public tensors ``(B, C, H, W)`` float32 in ``[0, 1]``."""

from __future__ import annotations

import numpy as np
import torch

from .io import to_float, to_uint8


def image_to_tensor(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8/uint16/float RGB -> ``(1, 3, H, W)`` float32 in ``[0, 1]`` (floats are clipped)."""
    if img.ndim == 2:
        img = img[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(to_float(img).transpose(2, 0, 1)))[None]
    return t.to(device)


def tensor_to_image(t: torch.Tensor, dtype: type = np.uint8) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` float in ``[0, 1]`` -> ``(H, W, C)`` numpy (uint8 rounded, uint16, or
    float32). A uint8 tensor (already rounded, e.g. an upscale made into an 8-bit buffer) is read as levels / 255;
    asked for uint8 it is only laid out ``(H, W, C)``, contiguous."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a batch of one, got {tuple(t.shape)}")
        t = t[0]
    if t.dtype == torch.uint8:
        if dtype == np.uint8:
            return np.ascontiguousarray(t.detach().cpu().numpy().transpose(1, 2, 0))
        t = t.float() / 255.0
    arr = t.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    if dtype == np.uint8:
        return to_uint8(arr)
    if dtype == np.uint16:
        return np.round(arr * 65535.0).astype(np.uint16)
    return arr.astype(np.float32)
