"""The FRGD-128 training recipe: one source for the numbers the GPU rounds (:mod:`.round`) and ``frgd train``
(:mod:`.train`) share, and the wall-clock learning-rate schedule both use.

The shipped ``frgd-128`` weights were trained with these (``docs/training_rounds.md``); ``frgd train``'s defaults are
the same numbers, so continuing the shipped model on one's own GPUs (the ``train_frgd128`` preset) trains it the way
the rounds do. The degradations (extreme inputs included) and the fusion masks come from the same dataclasses on both
paths (:class:`frgd.degrade.DegradationConfig`, :class:`.fusion.FusionConfig`).

A time budget makes the learning rate a function of the **wall-clock time**: a warm-up, then a cosine from the peak
to ``LR_MIN_RATIO`` of it exactly when the budget ends, so a run stopped by the clock always ends at a low LR
(a step-count schedule stopped early would end high).
"""

from __future__ import annotations

import math

__all__ = [
    "EMA_DECAY",
    "GRAD_CLIP",
    "LR",
    "LR_MIN_RATIO",
    "MIN_SNR_GAMMA",
    "RESUME_WARMUP_S",
    "WARMUP_S",
    "WEIGHT_DECAY",
    "cosine_factor",
    "lr_at",
]

LR = 3e-4
"""Peak AdamW learning rate (rounds 1-7; 1.5e-4 in round 2 for a short eager call)."""
LR_MIN_RATIO = 0.05
"""The LR at the end of a time budget, as a share of the peak."""
WARMUP_S = 20.0
"""Wall-clock warm-up of a round from scratch, seconds."""
RESUME_WARMUP_S = 8.0
"""Wall-clock warm-up of a round that starts from trained weights (a fresh optimizer), seconds."""
WEIGHT_DECAY = 0.0
GRAD_CLIP = 1.0
"""Global gradient-norm clip."""
EMA_DECAY = 0.999
"""Decay of the exported EMA weights."""
MIN_SNR_GAMMA = 5.0
"""The min-SNR-gamma loss weight (:func:`.train.min_snr_weight`)."""


def cosine_factor(frac: float, min_ratio: float) -> float:
    """Share of the peak LR at ``frac`` (0..1, clipped) of a cosine from 1 to ``min_ratio``."""
    frac = min(1.0, max(0.0, frac))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def lr_at(elapsed_s: float, total_s: float, warmup_s: float, peak: float, min_ratio: float) -> float:
    """Learning rate after ``elapsed_s`` of a ``total_s`` budget: linear warm-up from 0 over ``warmup_s``, then a
    cosine from ``peak`` to ``min_ratio * peak`` reached exactly at ``total_s`` (held after it)."""
    if total_s <= 0:
        return peak * min_ratio
    warmup_s = min(max(warmup_s, 0.0), 0.5 * total_s)
    if elapsed_s < warmup_s:
        return peak * max(elapsed_s, 0.0) / warmup_s
    return peak * cosine_factor((elapsed_s - warmup_s) / max(total_s - warmup_s, 1e-9), min_ratio)
