"""The damage detector's examples: crops of clean photos and faces, damaged by :func:`.synth.damage_photo`
(training batches, and the fixed validation and evaluation sets on photos the training never sees)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..io import to_float
from .synth import DamageConfig, damage_photo, draw_glasses

CROP = 128
"""Training crop side."""
FACE_SCALE = (1.0, 2.5)
"""A 128 px face is upscaled by this (log-uniform) before its crop: faces of 128-320 px, as in a portrait scan."""
PHOTO_SCALE = (0.5, 1.25)
"""A scene is rescaled by this before its crop."""
FACE_SHARE = 0.55
"""Share of the examples cut from faces."""
VAL_CROP = 192
VAL_PER_SOURCE = 48
"""Validation examples from the held-out scenes and from val faces each."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def template_eyes(size: int) -> np.ndarray:
    """The eye centres ``(2, 2)`` (x, y) of an aligned ``size`` px face (:func:`frgd.faces.align.template`'s)."""
    from ..faces.align import template

    return template(size)[:2]


def read_photos(folders: list[str]) -> list[np.ndarray]:
    """Every image in ``folders`` (sorted), ``(H, W, 3)`` uint8 RGB."""
    out = []
    for folder in folders:
        for p in sorted(Path(folder).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is not None:
                    out.append(np.ascontiguousarray(img[:, :, ::-1]))
    if not out:
        raise InputError(f"no images in {folders}")
    return out


def random_crop(img: np.ndarray, scale: float, size: int, rng: np.random.Generator,
                glasses_on: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``img`` resized by ``scale`` (at least to ``size``) and cut to a random ``size`` square, float32 in [0, 1].
    ``glasses_on``: eye centres ``(2, 2)`` (x, y) in ``img`` px of a face that gets glasses
    (:func:`.synth.draw_glasses`, drawn at the resized size, before the cut)."""
    h, w = img.shape[:2]
    scale = max(scale, size / min(h, w))
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    r = cv2.resize(img, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else img
    if glasses_on is not None:  # (only then the whole image as float: the crop alone otherwise)
        r = draw_glasses(to_float(r), np.asarray(glasses_on) * np.array([nw / w, nh / h]), rng)
    y, x = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    crop = to_float(r[y : y + size, x : x + size])
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.clip(crop, 0.0, 1.0)


def make_example(faces: np.ndarray, photos: list[np.ndarray], size: int, rng: np.random.Generator,
                 cfg: DamageConfig, face_share: float = FACE_SHARE) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One ``(damaged (size, size, 3), mask (size, size))`` example: cut from a face with probability
    ``face_share`` (always when there are no ``photos``, never when there are no ``faces``), else from a scene. A
    face wears glasses with probability ``cfg.glasses_prob`` (aligned faces: the template's eyes)."""
    from_faces = (len(faces) and rng.random() < face_share) or not photos
    lo_hi = FACE_SCALE if from_faces else PHOTO_SCALE
    src = faces[rng.integers(len(faces))] if from_faces else photos[rng.integers(len(photos))]
    scale = math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1])))
    eyes = None
    if from_faces and cfg.glasses_prob > 0 and rng.random() < cfg.glasses_prob:
        eyes = template_eyes(src.shape[0])
    damaged, mask, _ = damage_photo(random_crop(src, scale, size, rng, eyes), rng, cfg)
    return damaged, mask


def make_batch(faces: np.ndarray, photos: list[np.ndarray], n: int, size: int, rng: np.random.Generator,
               cfg: DamageConfig) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``n`` examples as ``(x (n, 3, size, size), mask (n, 1, size, size))``."""
    xs, ms = zip(*(make_example(faces, photos, size, rng, cfg) for _ in range(n)))
    x = torch.from_numpy(np.stack(xs).transpose(0, 3, 1, 2).copy())
    return x, torch.from_numpy(np.stack(ms))[:, None]


def val_set(faces: np.ndarray, photos: list[np.ndarray], n: int = VAL_PER_SOURCE, size: int = VAL_CROP,
            seed: int = 1234, cfg: DamageConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Fixed examples ``(x (2n, 3, size, size), mask (2n, 1, size, size))``: ``n`` from ``photos``, then ``n`` from
    ``faces``, drawn from ``seed`` (the training's validation: seed 1234; the evaluation uses others) and ``cfg``
    (default :class:`.synth.DamageConfig`)."""
    rng = np.random.default_rng(seed)
    cfg = cfg or DamageConfig()
    xs, ms = [], []
    for pool_faces, pool_photos in ((np.empty((0,)), photos), (faces, [])):
        for _ in range(n):
            d, m = make_example(pool_faces, pool_photos, size, rng, cfg, face_share=1.0)
            xs.append(d)
            ms.append(m)
    return torch.from_numpy(np.stack(xs).transpose(0, 3, 1, 2).copy()), torch.from_numpy(np.stack(ms))[:, None]
